// A deterministic corpus of strings that stress a byte-level BPE tokenizer:
// many scripts, emoji sequences, digits, whitespace runs, CRLF, control
// characters, special tokens inside text, long words and odd-but-valid UTF-8.
"use strict";
const { V4_ADDED_TOKENS } = require("./tokenizer_variants");

// mulberry32: small, seeded, reproducible everywhere.
function rng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)), // inclusive
    pick: (list) => list[Math.floor(next() * list.length)],
  };
}

const cp = (c) => String.fromCodePoint(c);
const fromRange = (r, [lo, hi]) => cp(r.int(lo, hi));

// Ranges: scripts, symbols, marks; the CJK ranges straddle DeepSeek's [一-龥] split.
const SCRIPT_RANGES = [
  [0x41, 0x5a], [0x61, 0x7a], [0xc0, 0x24f], [0x370, 0x3ff], [0x400, 0x4ff], [0x531, 0x58f], [0x5d0, 0x5ea],
  [0x600, 0x6ff], [0x900, 0x97f], [0x980, 0x9ff], [0xe00, 0xe7f], [0x10a0, 0x10ff], [0x1100, 0x11ff],
  [0xac00, 0xd7a3], [0x3040, 0x309f], [0x30a0, 0x30ff], [0x4e00, 0x9fa5], [0x9fa6, 0x9fff], [0x3400, 0x4dbf],
  [0x20000, 0x2a6df], [0xff00, 0xffef], [0x1200, 0x137f], [0x0f00, 0x0fff], [0x1800, 0x18af], [0x13a0, 0x13ff],
  [0x0300, 0x036f], [0x1ab0, 0x1aff], [0x20d0, 0x20ff], [0x2000, 0x206f], [0x2100, 0x214f], [0x2190, 0x21ff],
  [0x2200, 0x22ff], [0x2500, 0x257f], [0x20a0, 0x20cf], [0x2800, 0x28ff], [0x1d100, 0x1d1ff], [0x1f300, 0x1faff],
  [0xe000, 0xf8ff], [0xfe00, 0xfe0f], [0xe0000, 0xe007f], [0x10000, 0x1007f], [0x1e900, 0x1e95f], [0x3000, 0x303f],
];
const DIGITS = ["0123456789", "٠١٢٣٤٥٦٧٨٩", "۰۱۲۳۴۵۶۷۸۹", "०१२३४५६७८९", "０１２３４５６７８９", "²³¹¼½¾", "①②③⑩⑳", "ⅠⅡⅢⅫↀ", "𝟎𝟏𝟐𝟗", "〇一二"];
const SPACES = [" ", "  ", "\t", "\n", "\r\n", "\r", "\n\n", "\u000b", "\u000c", "\u00a0", "\u3000", "\u2028", "\u2029",
  "\u0085", "\u1680", "\u2000", "\u2009", "\u200a", "\u202f", "\u205f", "\u180e", "\u200b", "\ufeff", " \n ", "\r\n\r\n"];
const EMOJI = ["👩‍💻", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🏴‍☠️", "👍🏽", "🇺🇳", "🇯🇵🇰🇷", "1️⃣", "#️⃣", "❤️", "☺︎", "🧑🏿‍🤝‍🧑🏻",
  "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "😀", "🫠", "👁‍🗨", "🤷‍♀️"];
const WORDS = ["the", "The", "don't", "I'll", "we're", "it's", "they've", "'s", "'S", "hello", "world", "naïve", "café",
  "straße", "İstanbul", "ǅemal", "東京", "こんにちは", "カタカナ", "한국어", "Привет", "مرحبا", "שלום", "नमस्ते",
  "ภาษาไทย", "ελληνικά", "Ǆ", "ﬁ", "word", "words", "sword", "数字", "数字化"];
const PUNCT = [".", ",", "!", "?", "...", "!!", "?!", "—", "–", "-", "_", "__init__", "::", "->", "=>", "#include", ".NET",
  "@user", "$x", "%d", "&&", "||", "(", ")", "[", "]", "{", "}", "<", ">", "</", "/>", "\"", "'", "`", "```", "~",
  "^", "|", "\\", "/", "*", "**", "+", "=", "==", "!=", "<=", "、", "。", "，", "！", "？", "「", "」", "『", "』",
  "《", "》", "…", "•", "°", "€", "£", "¥", "©", "®", "™", "§", "¶", "†", "‡", "※", "、\n", ".\r\n", "!\n\n"];
const FRAGMENTS = ["http://example.com/path?q=1&r=2#frag", "user@example.org", "C:\\Windows\\System32", "0x7fff_ffff",
  "3.14159", "1,234,567.89", "2026-02-21T10:00:00Z", "v1.2.3-rc.4", "SGVsbG8gV29ybGQ=", "#!/bin/bash",
  "    def f(x):\n        return x ** 2\n", "\tif (a) {\n\t\treturn b;\n\t}\n", "<div class=\"a\">b</div>",
  "{\"key\": [1, 2, {\"n\": null}]}", "SELECT * FROM t WHERE id = 42;", "$$\\frac{a}{b}$$", "a\u0301e\u0308o\u0302"];

function specialTokens() {
  return ["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜▁pad▁｜>", "<｜User｜>", "<｜Assistant｜>",
    "<｜tool▁calls▁begin｜>", "<｜tool▁sep｜>", "<｜fim▁hole｜>", "<｜place▁holder▁no▁7｜>",
    ...Object.values(V4_ADDED_TOKENS), "<mask>", "[SEP]", "[BOTH]"];
}

function partialSpecial(r) {
  const s = r.pick(specialTokens());
  const chars = Array.from(s);
  const cut = r.int(1, Math.max(1, chars.length - 1));
  return r.next() < 0.5 ? chars.slice(0, cut).join("") : chars.slice(cut).join("");
}

function repeat(s, n) {
  return Array(n + 1).join(s);
}

const GENERATORS = {
  scripts(r) {
    let s = "";
    const runs = r.int(1, 8);
    for (let i = 0; i < runs; i++) {
      const range = r.pick(SCRIPT_RANGES);
      const n = r.int(1, 12);
      for (let j = 0; j < n; j++) s += fromRange(r, range);
      if (r.next() < 0.6) s += r.pick([" ", " ", "", "\n", r.pick(PUNCT)]);
    }
    return s;
  },
  emoji(r) {
    let s = "";
    for (let i = r.int(1, 6); i > 0; i--) s += r.pick(EMOJI) + (r.next() < 0.5 ? r.pick([" ", "", "!", "a", "\n"]) : "");
    return s;
  },
  digits(r) {
    let s = "";
    for (let i = r.int(1, 6); i > 0; i--) {
      const alphabet = Array.from(r.pick(DIGITS));
      for (let j = r.int(1, 12); j > 0; j--) s += r.pick(alphabet);
      s += r.pick(["", " ", ".", ",", "-", "x", "年", " + ", "\n"]);
    }
    return s;
  },
  whitespace(r) {
    let s = "";
    for (let i = r.int(1, 10); i > 0; i--) {
      s += r.next() < 0.5 ? repeat(r.pick(SPACES), r.int(1, 6)) : r.pick(WORDS);
    }
    return s;
  },
  controls(r) {
    let s = "";
    for (let i = r.int(1, 10); i > 0; i--) {
      const c = r.pick([[0x00, 0x1f], [0x7f, 0x9f]]);
      s += fromRange(r, c) + (r.next() < 0.5 ? r.pick(WORDS) : r.pick(SPACES));
    }
    return s;
  },
  specials(r) {
    let s = "";
    for (let i = r.int(1, 8); i > 0; i--) {
      const x = r.next();
      if (x < 0.4) s += r.pick(specialTokens());
      else if (x < 0.6) s += partialSpecial(r);
      else s += r.pick([...WORDS, ...SPACES, ...PUNCT, " <", "<<", ">>", "｜", "▁"]);
    }
    return s;
  },
  long_words(r) {
    const unit = r.pick(["a", "ab", "xyz", "字", "ア", "1", "!", " ", "\n", "é", "🙂", "\u0301", "ﷺ", r.pick(WORDS)]);
    return repeat(unit, r.int(50, 600)) + (r.next() < 0.5 ? r.pick(WORDS) : "");
  },
  code(r) {
    let s = "";
    for (let i = r.int(1, 5); i > 0; i--) s += r.pick(FRAGMENTS) + r.pick(["", "\n", " ", "\r\n", "  "]);
    return s;
  },
  mixed(r) {
    let s = "";
    const pools = [WORDS, PUNCT, SPACES, EMOJI, FRAGMENTS, specialTokens(), DIGITS];
    for (let i = r.int(2, 20); i > 0; i--) s += r.pick(r.pick(pools));
    return s;
  },
  any_code_point(r) {
    // Any Unicode scalar value, assigned or not (no surrogates: they are not UTF-8).
    let s = "";
    for (let i = r.int(1, 16); i > 0; i--) {
      let c;
      do {
        c = r.next() < 0.7 ? r.int(0, 0xffff) : r.int(0x10000, 0x10ffff);
      } while (c >= 0xd800 && c <= 0xdfff);
      s += cp(c);
    }
    return s;
  },
};

function makeCorpus(perGenerator) {
  const r = rng(20260221);
  const corpus = ["", " ", "\n", "a", "Hello! 毕老师！1 + 1 = 2 ĠÑĤÐ²ÑĬÑĢ", "<｜User｜>你好<｜Assistant｜><think>推理</think>答案<｜end▁of▁sentence｜>",
    repeat(" ", 5000), repeat("\n", 3000), repeat("a", 20000), repeat("字", 8000), repeat("1234567890", 500),
    repeat("👩‍💻", 500), repeat(" \t", 2000) + "x"];
  for (const generator of Object.values(GENERATORS)) {
    for (let i = 0; i < perGenerator; i++) corpus.push(generator(r));
  }
  return corpus;
}

// Id sequences for decode: whole tokens and lone bytes that split UTF-8 characters.
function makeDecodeCases(tokenizerJson, count) {
  const r = rng(7);
  const vocab = tokenizerJson.model.vocab;
  const byteIds = Object.keys(vocab).filter((t) => Array.from(t).length === 1).map((t) => vocab[t]);
  const maxId = 129279;
  const cases = [];
  for (let i = 0; i < count; i++) {
    const ids = [];
    for (let j = r.int(1, 24); j > 0; j--) ids.push(r.next() < 0.6 ? r.pick(byteIds) : r.int(0, maxId));
    cases.push(ids);
  }
  return cases;
}

module.exports = { makeCorpus, makeDecodeCases };
