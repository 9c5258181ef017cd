"""Tests of the corpus and dialogue preparation (standard library only):
    python3 -m unittest discover -s tools/default_model -p 'test_*.py'
Expected values are written by hand from the corpus' format and DeepSeek-V4's
chat format (DeepSeek's encoding/encoding_dsv4.py), not computed by the
code under test."""

from __future__ import annotations

import json
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import brown_corpus as bc  # noqa: E402
import chat_dialogues as cd  # noqa: E402
import prepare_inputs as pi  # noqa: E402


class BrownTokens(unittest.TestCase):
    def test_word_and_tag_split_at_the_last_slash(self):
        self.assertEqual(bc.split_word_tag("1-1/2/cd"), ("1-1/2", "cd"))
        self.assertEqual(bc.split_word_tag("Atlanta's/np$"), ("Atlanta's", "np$"))
        for bad in ("word", "/nn", "word/"):
            with self.assertRaises(ValueError):
                bc.split_word_tag(bad)

    def test_detokenize_quotes_and_punctuation(self):
        words = ["The", "jury", "said", "``", "no", "evidence", "''", ",", "(", "see", "below", ")", "."]
        self.assertEqual(bc.detokenize(words), ('The jury said "no evidence", (see below).', False))

    def test_single_quotes_alternate_and_carry_over(self):
        text, still_open = bc.detokenize(["he", "said", ",", "'", "You're", "my", "man"])
        self.assertEqual((text, still_open), ("he said, 'You're my man", True))
        self.assertEqual(bc.detokenize(["Go", "'", "."], still_open), ("Go'.", False))

    def test_doubled_marks_are_dropped(self):
        self.assertEqual(bc.detokenize(["won", "by", "Ivan", "Allen", "Jr.", "."])[0], "won by Ivan Allen Jr.")
        self.assertEqual(bc.detokenize(["war", ";", ";", "it", "meant", "death", "?", "?"])[0],
                         "war; it meant death?")

    def test_document_paragraphs_headlines_and_closing_marks(self):
        raw = ("\n\n\tThe/at jury/nn said/vbd so/rb ./.\n\n\n"
               "Merger/nn-hl proposed/vbn-hl \n"
               "However/wrb ,/, it/pps agreed/vbd ``/`` twice/rb ./.\n"
               "''/'' )/) It/pps ended/vbd ./.\n")
        document = bc.parse_document("ca99", "news", raw)
        self.assertEqual(document.paragraphs, [
            ["The jury said so."],
            ["Merger proposed"],
            ['However, it agreed "twice.")', "It ended."],
        ])
        self.assertEqual(document.text(),
                         'The jury said so.\n\nMerger proposed\n\nHowever, it agreed "twice.") It ended.')

    def test_split_is_two_percent_each_spread_over_the_corpus(self):
        splits = [bc.split_of(i) for i in range(500)]
        self.assertEqual(splits.count("test"), 10)
        self.assertEqual(splits.count("val"), 10)
        self.assertEqual([i for i, s in enumerate(splits) if s == "test"][:3], [25, 75, 125])


class ChatFormat(unittest.TestCase):
    def test_render_one_turn(self):
        self.assertEqual(cd.render([("Hi?", "Hello.")]), [
            ("<｜begin▁of▁sentence｜>", False),
            ("<｜User｜>Hi?<｜Assistant｜></think>", False),
            ("Hello.<｜end▁of▁sentence｜>", True),
        ])

    def test_render_two_turns_and_an_open_prompt(self):
        segments = cd.render([("A", "B"), ("C", "")])
        self.assertEqual("".join(text for text, _ in segments),
                         "<｜begin▁of▁sentence｜><｜User｜>A<｜Assistant｜></think>B<｜end▁of▁sentence｜>"
                         "<｜User｜>C<｜Assistant｜></think>")
        self.assertEqual([trained for _, trained in segments], [False, False, True, False])

    def test_central_sentence_shares_the_most_words(self):
        # Overlaps with the others: 3, 3 + 2 and 2 content words.
        sentences = ["Cats chase mice.", "Dogs and cats chase mice daily.", "Dogs sleep daily."]
        self.assertEqual(cd.central_sentence(sentences), "Dogs and cats chase mice daily.")

    def test_dialogues_answer_from_the_document(self):
        sentences = [f"Sentence number {w}." for w in
                     ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")]
        document = bc.Document("cz01", "romance", [sentences[:5], sentences[5:]])
        dialogues = cd.make_dialogues([document], 60, seed=3)
        self.assertEqual(dialogues, cd.make_dialogues([document], 60, seed=3))
        kinds = set()
        for turns in dialogues:
            request, answer = turns[0]
            if "kind of text" in request or "come from" in request:
                self.assertIn(answer, ("It reads like a romance story.", "This looks like a romance story."))
                kinds.add("genre")
            elif "ummar" in request or "main point" in request:
                sentence = answer.removeprefix("In short: ").removeprefix("The main point: ")
                self.assertIn(sentence, sentences)
                self.assertIn(sentence, request)  # extractive: a sentence of the passage
                kinds.add("summarize")
            else:
                # The answer is the sentences right after the passage.
                last_given = request.split("\n\n")[-1 if request.startswith(("Continue", "What", "Please")) else 0]
                last_index = sentences.index(last_given.split(". ")[-1].rstrip(".") + ".")
                following = " ".join(sentences[last_index + 1:last_index + 1 + answer.count(".")])
                self.assertEqual(answer, following)
                kinds.add("continue")
        self.assertEqual(kinds, {"genre", "summarize", "continue"})


class TokenizerSpec(unittest.TestCase):
    def write(self, folder: Path, added: list[str]) -> Path:
        path = folder / "tokenizer.json"
        path.write_text(json.dumps({
            "added_tokens": [{"content": t} for t in added],
            "model": {"type": "BPE"}, "normalizer": {"type": "Sequence", "normalizers": []},
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": []},
            "post_processor": {"type": "ByteLevel"}, "decoder": {"type": "ByteLevel"},
        }), encoding="utf-8")
        return path

    def test_spec_copies_deepseek_sections_and_lists_v4_specials(self):
        with tempfile.TemporaryDirectory() as folder:
            spec = pi.tokenizer_spec(self.write(Path(folder), pi.SPECIAL_TOKENS[:5]))
        self.assertEqual(spec["decoder"], {"type": "ByteLevel"})
        self.assertEqual(spec["special_tokens"][:2], ["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"])
        self.assertIn("｜DSML｜", spec["special_tokens"])
        self.assertEqual(len(set(spec["special_tokens"])), 16)

    def test_a_tokenizer_without_deepseeks_specials_is_refused(self):
        with tempfile.TemporaryDirectory() as folder:
            with self.assertRaises(SystemExit):
                pi.tokenizer_spec(self.write(Path(folder), ["<s>", "</s>"]))


if __name__ == "__main__":
    unittest.main()
