// Lighthouse's accessibility category on the page a Chromium already shows (snapshot mode), so a page
// reached by a form POST is scored as the subscriber sees it, at the width the browser has now.
//
//   node lighthouse-snapshot.mjs HOST:PORT
//
// HOST:PORT is the DevTools address of the Chromium the browser tests drive (Selenium's
// `goog:chromeOptions.debuggerAddress`). Reads one request a line on stdin, {"url": URL, "formFactor":
// "mobile"|"desktop"}, scores the tab that shows URL, and answers one line on stdout:
// {"score": 0..100, "failed": [{"id", "title", "weight", "nodes": [html...]}]} or {"error": "..."}.
// One process for many pages: Node and Lighthouse start once.
import readline from 'node:readline';
import puppeteer from 'puppeteer-core';
import {snapshot} from 'lighthouse';

const browser = await puppeteer.connect({browserURL: `http://${process.argv[2]}`, defaultViewport: null});

async function score({url, formFactor}) {
  const pages = await browser.pages();
  const page = pages.find((p) => p.url() === url) || (pages.length === 1 ? pages[0] : null);
  if (!page) throw new Error(`no tab shows ${url} (tabs: ${pages.map((p) => p.url()).join(', ')})`);
  const flags = {formFactor, screenEmulation: {disabled: true}, onlyCategories: ['accessibility'], logLevel: 'error'};
  const {lhr} = await snapshot(page, {flags, config: {extends: 'lighthouse:default'}});
  const category = lhr.categories.accessibility;
  const failed = category.auditRefs
    .filter((ref) => ref.weight > 0 && lhr.audits[ref.id].score !== null && lhr.audits[ref.id].score < 1)
    .map((ref) => ({id: ref.id, title: lhr.audits[ref.id].title, weight: ref.weight,
                    nodes: (lhr.audits[ref.id].details?.items || []).map((i) => i.node?.snippet || '')}));
  return {score: Math.round(category.score * 100), failed};
}

for await (const line of readline.createInterface({input: process.stdin})) {
  if (!line.trim()) continue;
  let answer;
  try {
    answer = await score(JSON.parse(line));
  } catch (err) {
    answer = {error: String(err && err.stack || err)};
  }
  process.stdout.write(JSON.stringify(answer) + '\n');
}
await browser.disconnect();
