// caniemail's data on an email's HTML (read from stdin), for the clients named on the command line
// (globs, e.g. gmail.* outlook.windows). Prints one JSON object:
//   {"errors": [{"client", "feature", "notes", "where"}], "warnings": [...]}
// An error is a feature the client does not support at all; a warning, one it supports in part.
import {caniemail} from 'caniemail';
import fs from 'node:fs';

const html = fs.readFileSync(0, 'utf8');
const clients = process.argv.slice(2);
const {issues} = caniemail({clients, html});
// An HTML feature's position is in the document; a CSS one's, in its <style> block (not shown here).
const lines = html.split('\n');
const where = (pos) => !pos ? '' : 'source' in pos ? `a <style> rule (line ${pos.start.line} of its block)`
  : lines.slice(pos.start.line - 1, pos.end.line).join('\n').trim().slice(0, 300);
const flat = (map) => [...map].flatMap(([client, list]) => list.map((issue) => ({
  client, feature: issue.title, notes: issue.notes,
  where: where(issue.position),
})));
process.stdout.write(JSON.stringify({errors: flat(issues.errors), warnings: flat(issues.warnings)}) + '\n');
