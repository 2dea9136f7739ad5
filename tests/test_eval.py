"""Evaluation protocol (metrics on hand-made cases), the eval-set reader, and `digest rank` /
`digest eval`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from digest.cli.ranking import eval_command, rank_command
from digest.evaluation import data as ds
from digest.evaluation import feedback as fb
from digest.evaluation import static as ev
from digest.evaluation.listings import ListingsError, read_papers
from digest.ranking import semantic

TSV = "".join(f"{line}\n" for line in [
    "paper_id\ttitle\tlink\tkeywords\tabstract",
    "a1\tGraph Neural Networks for Chemistry\thttp://x\tGraph Neural Networks, chemistry\t"
    "We apply graph neural networks (GNNs) to molecules.",
    "a2\tPolicy Gradients Revisited\thttp://x\tReinforcement Learning\t"
    "A study of policy gradient methods for reinforcement learning agents.",
    "a3\tMessage Passing on Graphs\thttp://x\tgraph neural network\t"
    "Message passing graph neural networks on large graphs.",
    "a4\tConvex Optimization Bounds\thttp://x\t\tTight bounds for convex optimization.",
    "a5\tOffline RL with Critics\thttp://x\treinforcement learning, offline RL\t"
    "Offline reinforcement learning with conservative critics.",
])
TOPICS = "graph neural network\t2\nreinforcement learning\t2\nunlabelled topic\t0\n"


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    data = tmp_path / "papers.tsv"
    data.write_text(TSV, encoding="utf-8")
    topics = tmp_path / "topics.txt"
    topics.write_text(TOPICS, encoding="utf-8")
    return data, topics


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Graph Neural Networks", "graph neural network"),
        ("  Meta-Learning! ", "meta-learning"),
        ("GANs", "gan"),
        ("loss", "loss"),  # ends in 'ss'
        ("bus", "bus"),  # too short to fold
        ("Few-shot   Learning (FSL)", "few-shot learning fsl"),
    ],
)
def test_normalise_keyword(raw, expected):
    assert ds.normalise_keyword(raw) == expected


def test_metrics_on_hand_made_rankings():
    ranked = np.array([1, 0, 1, 0, 0], dtype=bool)
    idcg = 1 + 1 / math.log2(3)
    assert ds.ndcg_at(ranked, 2) == pytest.approx((1 + 1 / math.log2(4)) / idcg)
    assert ds.ndcg_at(np.array([1, 1, 0], dtype=bool), 2) == pytest.approx(1.0)
    assert ds.ndcg_at(np.zeros(5, dtype=bool), 3) == 0.0
    assert ds.precision_at(ranked) == pytest.approx(0.2)
    assert ds.average_precision_at(ranked, 2) == pytest.approx((1 / 1 + 2 / 3) / 2)
    # relevant papers missing from the ranking still count in the denominator
    assert ds.average_precision_at(np.array([0, 1], dtype=bool), 4) == pytest.approx(0.5 / 4)
    # ... but never more than k of them
    flags = np.zeros(300, dtype=bool)
    flags[:100] = True
    assert ds.average_precision_at(flags, 250) == pytest.approx(1.0)
    # nDCG only looks at the first 10
    late = np.zeros(20, dtype=bool)
    late[10] = True
    assert ds.ndcg_at(late, 1) == 0.0


def test_load_dataset_and_topics(files):
    data_path, topics_path = files
    data = ds.load_dataset(data_path)
    assert data.ids == ["a1", "a2", "a3", "a4", "a5"]
    assert data.docs[0] == (
        "Graph Neural Networks for Chemistry",
        "We apply graph neural networks (GNNs) to molecules.",
    )
    assert data.keywords[0] == {"graph neural network", "chemistry"}
    assert data.keywords[3] == set()
    assert ds.load_topics(topics_path) == [
        "graph neural network",
        "reinforcement learning",
        "unlabelled topic",
    ]


def test_evaluate_perfect_and_reversed_scorers(files):
    data = ds.load_dataset(files[0])
    topics = ds.load_topics(files[1])

    def oracle(docs, qs):
        return np.array([[1.0 if q in kw else 0.0 for kw in data.keywords] for q in qs])

    best = ev.evaluate(data, topics, oracle, "oracle")
    assert best.topics == 2  # the topic nobody labelled is left out
    assert (best.ndcg10, best.map100) == (1.0, 1.0)
    assert best.p10 == pytest.approx(0.2)
    worst = ev.evaluate(data, topics, lambda d, q: -oracle(d, q), "reversed")
    assert worst.ndcg10 < 0.6 and worst.map100 < 0.5
    lexical = ev.evaluate(data, topics, ev.RANKERS["default"].scorer, "default")
    assert lexical.ndcg10 == 1.0  # tiny and unambiguous: the real ranker gets it right


def test_wrong_columns_are_refused(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("paper_id\tname\nx\ty\n", encoding="utf-8")
    with pytest.raises(ListingsError, match="missing column"):
        ds.load_dataset(bad)


EVAL_DIRS = [Path("/work/shared/eval"), Path(__file__).resolve().parents[2] / "shared" / "eval"]
EVAL_DIR = next((d for d in EVAL_DIRS if (d / "iclr2021_paperlist.tsv").exists()), None)


@pytest.mark.skipif(EVAL_DIR is None, reason="the shared eval set is not beside this checkout")
def test_lexical_ranker_quality_does_not_regress():
    # the hybrid's MiniLM pass over 2,966 papers takes minutes of CPU: `digest eval` measures it
    assert EVAL_DIR is not None
    data = ds.load_dataset(EVAL_DIR / "iclr2021_paperlist.tsv")
    topics = ds.load_topics(EVAL_DIR / "iclr2021_topics.txt")
    result = ev.evaluate(data, topics, ev.RANKERS["lexical"].scorer, "lexical")
    assert result.topics == 59
    # measured 0.522 / 0.493 / 0.380; the published TF-IDF baseline is 0.489 / 0.468 / 0.348
    assert result.ndcg10 >= 0.51 and result.p10 >= 0.48 and result.map100 >= 0.37


# -- commands ----------------------------------------------------------------------------------


def test_eval_command_prints_table_and_json(files):
    runner = CliRunner()
    data, topics = files
    res = runner.invoke(
        eval_command,
        ["--dataset", str(data), "--topics", str(topics), "--ranker", "default", "--ranker", "bm25"],
    )
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].startswith("5 papers, 2 topics")
    assert any(line.startswith("default ") and "1.000" in line for line in lines)
    assert any(line.startswith("baseline: TF-IDF") and "0.489" in line for line in lines)
    res = runner.invoke(
        eval_command, ["--dataset", str(data), "--topics", str(topics), "--ranker", "default", "--json"]
    )
    out = json.loads(res.output)
    assert out["topics"] == 2
    assert out["rows"] == [{"name": "default", "ndcg@10": 1.0, "p@10": 0.2, "map@100": 1.0}]
    # the older name
    assert out["results"] == [{"ranker": "default", "ndcg@10": 1.0, "p@10": 0.2, "map@100": 1.0}]
    assert len(out["baselines"]) == 4


def test_eval_command_bad_input(files, tmp_path):
    runner = CliRunner()
    data, topics = files
    res = runner.invoke(eval_command, ["--dataset", str(tmp_path / "nope.tsv"), "--topics", str(topics)])
    assert res.exit_code == 1
    assert res.output.strip().splitlines() == [
        f"Error: cannot read {tmp_path / 'nope.tsv'}: No such file or directory"
    ]
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("title,abstract\nA,B\n", encoding="utf-8")
    res = runner.invoke(eval_command, ["--dataset", str(wrong), "--topics", str(topics)])
    assert res.exit_code == 1 and "missing column(s) keywords" in res.output
    assert "Traceback" not in res.output
    res = runner.invoke(eval_command, ["--dataset", str(data), "--topics", str(tmp_path / "none.txt")])
    assert res.exit_code == 1 and "cannot read" in res.output
    res = runner.invoke(eval_command, ["--dataset", str(data), "--topics", str(topics), "--ranker", "magic"])
    assert res.exit_code == 2


def test_rank_command_topics_and_json(files):
    runner = CliRunner()
    data, _ = files
    res = runner.invoke(rank_command, ["--listings", str(data), "--topic", "GNN", "--json"])
    assert res.exit_code == 0, res.output
    out = [json.loads(line) for line in res.output.splitlines()]
    assert len(out) == 1 and out[0]["query"] == "GNN"
    ids = [r["id"] for r in out[0]["ranking"]]
    assert set(ids) == {"a1", "a3"}
    assert all(r["why"].startswith("Matches “GNN”") for r in out[0]["ranking"])
    res = runner.invoke(
        rank_command, ["--listings", str(data), "--topic", "reinforcement learning", "--limit", "1"]
    )
    assert res.exit_code == 0
    assert "== reinforcement learning (1 of 5 papers)" in res.output
    assert "Matches “reinforcement learning”" in res.output


def test_rank_command_queries_file_each_ranked_alone(files, tmp_path):
    queries = tmp_path / "q.txt"
    queries.write_text("graph neural network\n# a comment\n\nconvex optimization\n", encoding="utf-8")
    res = CliRunner().invoke(rank_command, ["--listings", str(files[0]), "--queries", str(queries), "--json"])
    assert res.exit_code == 0, res.output
    out = [json.loads(line) for line in res.output.splitlines()]
    assert [o["query"] for o in out] == ["graph neural network", "convex optimization"]
    assert [r["id"] for r in out[1]["ranking"]] == ["a4"]


def test_rank_command_reads_json_lines(tmp_path):
    path = tmp_path / "papers.jsonl"
    rows = [
        {
            "id": "2410.17243",
            "title": "Diffusion Models Beat GANs",
            "abstract": "Diffusion models for images.",
        },
        {"id": "2410.00001", "title": "Sorting Networks", "abstract": "Comparator networks that sort."},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    papers, ids, rejected = read_papers(path)
    assert [p.title for p in papers] == ["Diffusion Models Beat GANs", "Sorting Networks"] and rejected == 0
    res = CliRunner().invoke(rank_command, ["--listings", str(path), "--topic", "diffusion models", "--json"])
    assert res.exit_code == 0, res.output
    assert [r["id"] for r in json.loads(res.output)["ranking"]] == ["2410.17243"]


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_rank_keeps_each_entrys_own_id(tmp_path, suffix):
    """issue 13: `{"id": "NnMEadcdyD", ...}` came back as "id": "0" (the row number)."""
    rows = [{"id": "NnMEadcdyD", "title": "Diffusion models for cats",
             "abstract": "Diffusion on cat pictures."},
            {"paper_id": 17, "title": "Diffusion sorting", "abstract": "Sorting with diffusion."},
            {"arxiv_id": "2410.17243v2", "title": "Diffusion at scale", "abstract": "Big diffusion models."},
            {"title": "Diffusion without an id", "abstract": "No id here, only diffusion."}]
    path = tmp_path / f"papers{suffix}"
    text = "\n".join(json.dumps(r) for r in rows) if suffix == ".jsonl" else json.dumps(rows)
    path.write_text(text, encoding="utf-8")
    res = CliRunner().invoke(rank_command, ["--listings", str(path), "--topic", "diffusion", "--json"])
    assert res.exit_code == 0, res.output
    ids = sorted(r["id"] for r in json.loads(res.output)["ranking"])
    assert ids == ["17", "2410.17243v2", "3", "NnMEadcdyD"]


def test_rank_refuses_an_unreadable_listings_file_in_one_line(tmp_path):
    for name, data in [("latin1.csv", "title,abstract\nCafé,Un résumé\n".encode("latin-1")),
                       ("cut.json", b'[{"title": "Diffusion", "abstract": "cut'), ("empty.jsonl", b"")]:
        (tmp_path / name).write_bytes(data)
        res = CliRunner().invoke(rank_command, ["--listings", str(tmp_path / name), "--topic", "diffusion"])
        assert res.exit_code == 1 and "Traceback" not in res.output, res.output
        line = res.output.strip()
        assert line.startswith(f"Error: {tmp_path / name}: ") and len(line.splitlines()) == 1, line


def test_queries_and_topics_files_follow_the_same_rule(files, tmp_path):
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("réseaux de neurones\n".encode("latin-1"))
    for command, args in [(rank_command, ["--listings", str(files[0]), "--queries", str(latin1)]),
                          (eval_command, ["--dataset", str(files[0]), "--topics", str(latin1)])]:
        res = CliRunner().invoke(command, args)
        assert res.exit_code == 1 and res.output.startswith(f"Error: {latin1}: not UTF-8 text"), res.output


def test_rank_command_bad_input(files, tmp_path):
    runner = CliRunner()
    res = runner.invoke(rank_command, ["--listings", str(tmp_path / "missing.tsv"), "--topic", "x"])
    assert res.exit_code == 1 and res.output.strip() == f"Error: no such file: {tmp_path / 'missing.tsv'}"
    res = runner.invoke(rank_command, ["--listings", str(files[0])])
    assert res.exit_code == 2 and "either --topic" in res.output
    bad = tmp_path / "bad.csv"
    bad.write_text("name,abstract\nA,B\n", encoding="utf-8")
    res = runner.invoke(rank_command, ["--listings", str(bad), "--topic", "x"])
    assert res.exit_code == 1 and "missing column(s) title" in res.output


@pytest.mark.skipif(
    not semantic.available(), reason="semantic extra not installed: pip install '.[semantic]'"
)
def test_semantic_scorer_finds_meaning_without_shared_words():
    docs = [
        ("Automobile engines", "Combustion engines for cars and trucks."),
        ("Protein folding", "Predicting the structure of proteins."),
    ]
    sim = semantic.similarity(docs, ["vehicle motors", "biology of amino acid chains"])
    assert sim.shape == (2, 2)
    assert sim[0, 0] > sim[0, 1] and sim[1, 1] > sim[1, 0]
    fused = ev.RANKERS["hybrid"].scorer(docs, ["vehicle motors"])
    assert fused[0, 0] > 0 and fused[0, 1] == 0  # a meaning-only match, and no match


def test_abstract_sentences_are_split_at_full_stops_before_capitals():
    text = "We study GNNs. They fail (sometimes) on e.g. long graphs. Results: 3.5 points! (See code.) end"
    assert semantic.sentences(text) == [
        "We study GNNs.",
        "They fail (sometimes) on e.g. long graphs.",
        "Results: 3.5 points!",
        "(See code.) end",
    ]
    assert semantic.sentences("") == []


@pytest.mark.skipif(
    not semantic.available(), reason="semantic extra not installed: pip install '.[semantic]'"
)
def test_sentence_similarity_uses_the_best_sentence_and_caches_on_disk(tmp_path, monkeypatch):
    docs = [
        ("A study of engines", "We review many topics. Combustion engines power cars and trucks."),
        ("Protein folding", "Predicting the structure of proteins."),
        ("Empty abstract", ""),
    ]
    monkeypatch.setattr(semantic, "cache_dir", tmp_path)
    sim = semantic.sentence_similarity(docs, ["vehicle motors"])
    assert sim.shape == (1, 3) and sim[0, 0] > sim[0, 1]
    assert [p.name.split("-")[1] for p in tmp_path.glob("*.npz")] == ["papers"]
    again = semantic.sentence_similarity(docs, ["vehicle motors"])  # read back from disk
    assert np.allclose(sim, again, atol=1e-5)
    # no sentences
    assert sim[0, 2] == pytest.approx(float(semantic.similarity(docs, ["vehicle motors"])[0, 2]))


def test_the_commands_library_calls_return_plain_rows(files, tmp_path):
    from digest.evaluation import tryout as tr

    data, topics = files
    result = tr.tryout(data, topics=["GNN", " "], limit=5, ranker="lexical")
    assert result.papers == 5 and [q.query for q in result.results] == ["GNN"]
    assert {r.id for r in result.results[0].rows} == {"a1", "a3"}
    assert tr.text_lines(result)[0] == "== GNN (2 of 5 papers)"
    with pytest.raises(tr.TryoutError, match="cannot read"):
        tr.tryout(data, queries=tmp_path / "none.txt")
    report = ev.run(data, topics, ["bm25"])
    assert (report.papers, report.topics, [r.ranker for r in report.results]) == (5, 2, ["bm25"])
    assert json.loads(ev.report_json(report))["dataset"] == str(data)
    with pytest.raises(ds.EvalError, match="no topics"):
        (tmp_path / "counts.txt").write_text("\t3\n", encoding="utf-8")  # a count, no topic
        ev.run(data, tmp_path / "counts.txt")
    with pytest.raises(ds.EvalError, match="empty file"):
        (tmp_path / "empty.txt").write_text("\n", encoding="utf-8")
        ev.run(data, tmp_path / "empty.txt")


# -- feedback: the simulated readers of shared/eval/FEEDBACK.md ------------------------------------

VIDEO_WORDS = ["temporal attention", "frame interpolation", "motion priors", "video clips", "camera motion",
               "long videos", "text-to-video", "frame consistency", "optical flow", "video editing",
               "talking heads",
               "video super-resolution", "action videos", "video prediction"]
MOLECULE_WORDS = ["protein pockets", "drug molecules", "atom positions", "chemical bonds", "conformers",
                  "binding affinity", "ligands", "crystal structures", "enzymes", "peptides", "antibodies",
                  "molecular graphs", "reaction pathways", "small molecules"]


def feedback_files(tmp_path: Path) -> tuple[Path, Path]:
    """Diffusion papers of two kinds, only the video ones labelled with the topic: digest 1 shows both
    kinds, the reader likes the video ones and dislikes the others, and digest 2 can learn from it."""
    rows = ["paper_id\ttitle\tlink\tkeywords\tabstract"]
    for i, (v, m) in enumerate(zip(VIDEO_WORDS, MOLECULE_WORDS, strict=True)):
        rows.append(f"v{i}\tDiffusion models with {v}\thttp://x\tdiffusion models, video\t"
                    f"We train diffusion models on video with {v}; frames stay consistent over time.")
        rows.append(f"m{i}\tDiffusion models for {m}\thttp://x\tdrug design\t"
                    f"We train diffusion models on {m}; the molecule stays physically valid.")
    for i in range(20):
        rows.append(f"o{i}\tSorting networks {i}\thttp://x\tsorting\t"
                    f"Comparator networks that sort {i} numbers.")
    data = tmp_path / "fb.tsv"
    data.write_text("\n".join(rows) + "\n", encoding="utf-8")
    topics = tmp_path / "fb_topics.txt"
    topics.write_text("diffusion model\t14\n", encoding="utf-8")
    return data, topics


def test_eval_feedback_measures_digest_2_for_each_method(tmp_path):
    data, topics = feedback_files(tmp_path)
    res = CliRunner().invoke(eval_command, ["--dataset", str(data), "--topics", str(topics), "--feedback",
                                            "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert (out["papers"], out["topics"]) == (48, 1)
    rows = {r["name"]: r for r in out["rows"]}
    assert list(rows) == list(fb.FEEDBACK_METHODS) and {"none", "default"} <= set(rows)
    assert all(0 <= r[k] <= 1 for r in rows.values() for k in ("ndcg@10", "p@10", "map@100"))
    # digest 1 showed both kinds: the liked video papers pull the other video papers up
    assert rows["default"]["ndcg@10"] == 1.0 > rows["none"]["ndcg@10"]
    assert rows["lexical"]["map@100"] > rows["none"]["map@100"]
    assert out["reference"] == []  # ICLR's published rows belong to ICLR's set only (--rounds computes them)
    text = CliRunner().invoke(eval_command, ["--dataset", str(data), "--topics", str(topics), "--feedback"])
    lines = text.output.splitlines()
    assert lines[0].startswith("48 papers, 1 simulated readers")
    assert "reference rows computed on this set" in lines[0] and not any("reference:" in x for x in lines)
    assert any(line.startswith("none") for line in lines)
    assert any(line.startswith("default") for line in lines)
    res = CliRunner().invoke(eval_command, ["--dataset", str(data), "--topics", str(topics), "--feedback",
                                            "--ranker", "bm25"])
    assert res.exit_code == 2 and "leave out --ranker" in res.output


def test_the_simulated_reader_judges_digest_1_by_the_labels(tmp_path):
    data = ds.load_dataset(feedback_files(tmp_path)[0])
    first = np.arange(len(data.ids), 0, -1, dtype=float)[None, :]  # file order
    (reader,) = fb.simulated_readers(data, ["diffusion model"], first)
    assert reader.shown.tolist() == list(range(10))
    assert reader.liked == [0, 2, 4, 6, 8] and reader.disliked == [1, 3, 5, 7, 9]
    perfect = reader.relevant.astype(float)
    assert fb.second_digest(reader, perfect) == (1.0, 0.9, 1.0)  # 9 relevant left: P@10 is 0.9 at best


# -- a month of digests (FEEDBACK.md, "A month of digests") --------------------------------------------

FIXTURES = Path(__file__).parent / "fixtures"


def month_json(dataset: str, rounds: int = 2) -> list[dict]:
    res = CliRunner().invoke(eval_command, ["--dataset", str(FIXTURES / dataset), "--topics",
                                            str(FIXTURES / "eval_sample_topics.txt"), "--rounds", str(rounds),
                                            "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.output)["rows"]


def test_a_month_of_digests_prints_each_reader_and_method_with_reference_rows_computed_on_the_set():
    a, b = month_json("eval_sample_a.tsv"), month_json("eval_sample_b.tsv")
    names = ["none", "default", "arxiv-sanity-lite"] + (["rocchio"] if semantic.available() else [])
    for rows in (a, b):
        assert [(r["reader"], r["name"]) for r in rows] == [
            (reader, name) for reader in ("phrase", "phrase-likes", "seeded") for name in names]
        assert all(set(r) == {"reader", "name", "ndcg@10", "recall"} and len(r["ndcg@10"]) == 2
                   and 0 <= r["recall"] <= 1 for r in rows)
        by = {(r["reader"], r["name"]): r for r in rows}
        # digest 1 of a phrase reader is the static ranking, whatever the method does with judgments
        assert len({tuple(by["phrase", n]["ndcg@10"][:1]) for n in names}) == 1
    # the reference rows are measured on the set given, not printed as constants
    reference = {(r["reader"], r["name"]): r for r in a if r["name"] != "none"}
    other = {(r["reader"], r["name"]): r for r in b if r["name"] != "none"}
    assert all(reference[k] != other[k] for k in reference if k[1] == "arxiv-sanity-lite")


def test_a_month_of_digests_as_text_and_bad_input():
    res = CliRunner().invoke(eval_command, ["--dataset", str(FIXTURES / "eval_sample_b.tsv"), "--topics",
                                            str(FIXTURES / "eval_sample_topics.txt"), "--rounds", "2"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0] == "60 papers, 2 digests of 10; readers: 3 phrase, 3 phrase-likes, 3 seeded"
    assert lines[1].split() == ["reader", "method", "d1", "d2", "mean", "+-se", "recall", "+-se"]
    assert any(line.split()[:2] == ["seeded", "arxiv-sanity-lite"] for line in lines)
    res = CliRunner().invoke(eval_command, ["--dataset", str(FIXTURES / "eval_sample_b.tsv"), "--topics",
                                            str(FIXTURES / "eval_sample_topics.txt"), "--rounds", "2",
                                            "--feedback"])
    assert res.exit_code == 2 and "--rounds measures the planner's own ranking" in res.output
    res = CliRunner().invoke(eval_command, ["--dataset", str(FIXTURES / "missing.tsv"), "--topics",
                                            str(FIXTURES / "eval_sample_topics.txt"), "--rounds", "2"])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert res.output.strip().splitlines()[-1].startswith("Error: cannot read")


def test_a_month_says_which_topics_have_no_reader(tmp_path):
    topics = tmp_path / "topics.txt"
    topics.write_text((FIXTURES / "eval_sample_topics.txt").read_text()
                      + "quantum gravity\nfew-shot learning\n")  # none relevant; 2-4: too few to seed
    res = CliRunner().invoke(eval_command, ["--dataset", str(FIXTURES / "eval_sample_b.tsv"), "--topics",
                                            str(topics), "--rounds", "1"])
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[0] == (
        "60 papers, 1 digest of 10; readers: 4 phrase, 4 phrase-likes, 3 seeded (5 topics: 1 with no "
        "relevant paper; 1 with 5 or fewer, too few for a seeded reader)")


def test_the_month_judges_every_shown_paper_and_never_shows_one_twice():
    from digest.evaluation import month

    data = ds.load_dataset(FIXTURES / "eval_sample_a.tsv")
    readers = month.readers_for(data, ["meta-learning"], "phrase-likes")
    seeded = month.readers_for(data, ["meta-learning"], "seeded")
    assert seeded[0].seeds == [int(i) for i in np.flatnonzero(data.relevant("meta-learning"))[:5]]

    def file_order(rs):
        return [np.flatnonzero(r.remaining(len(data.ids)))[:10].tolist() for r in rs]

    ndcg, recall = month.simulate(readers + seeded, file_order, 3)
    for r in readers + seeded:
        assert len(r.shown) == len(set(r.shown)) == 30 and not set(r.shown) & set(r.seeds)
        assert r.liked == [d for d in r.shown if r.relevant[d]]
    assert readers[0].disliked == [] and seeded[0].disliked == [d for d in seeded[0].shown
                                                                 if not seeded[0].relevant[d]]
    assert recall[0] == pytest.approx(sum(readers[0].relevant[readers[0].shown]) / 10)
    assert ndcg.shape == (2, 3)
