"""Templated chat dialogues made from corpus text, rendered in DeepSeek-V4's
chat format (non-thinking "chat" mode of DeepSeek's encoding/encoding_dsv4.py):

  <BOS><｜User｜>{user}<｜Assistant｜></think>{answer}<EOS><｜User｜>{user2}<｜Assistant｜></think>{answer2}<EOS>

No newlines between turns; the generation prompt ends with
`<｜Assistant｜></think>`. A rendered dialogue is kept as a list of
(text, trained) segments so that the fine-tune puts its loss on the assistant
answers and their EOS only.

Three kinds of request, each with an answer that is true of the passage:
  continue   the next sentences of the document;
  summarize  an extractive one-sentence summary: the passage sentence that
             shares the most words with the others;
  genre      what kind of text it is, from the corpus' own genre labels.
"""

from __future__ import annotations

import random
import re

from brown_corpus import GENRE_DESCRIPTIONS, Document

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
USER = "<｜User｜>"
ASSISTANT = "<｜Assistant｜>"
THINK_END = "</think>"

Segment = tuple[str, bool]  # (text, whether the fine-tune trains on it)

_CONTINUE_REQUESTS = [
    "Continue this passage:\n\n{passage}",
    "What comes next?\n\n{passage}",
    "Please continue the text below.\n\n{passage}",
    "{passage}\n\nContinue.",
]
_SUMMARIZE_REQUESTS = [
    "Summarize this passage in one sentence:\n\n{passage}",
    "What is the main point of this passage?\n\n{passage}",
    "{passage}\n\nGive me a one-sentence summary.",
]
_SUMMARY_ANSWERS = ["{sentence}", "In short: {sentence}", "The main point: {sentence}"]
_GENRE_REQUESTS = [
    "What kind of text is this?\n\n{passage}",
    "{passage}\n\nWhere might this passage come from?",
]
_GENRE_ANSWERS = ["It reads like {genre}.", "This looks like {genre}."]
_FOLLOW_UPS = ["Go on.", "Continue.", "And then?", "Keep going."]

_WORD = re.compile(r"[a-z]+")
_STOP_WORDS = frozenset(
    "a an and are as at be but by for from had has have he her his i in is it its of on or "
    "she that the their they this to was were which with you".split())


def render(turns: list[tuple[str, str]]) -> list[Segment]:
    """Renders (user, assistant) turns; a final assistant text of "" leaves the
    generation prompt open (what a server sends to the model)."""
    segments: list[Segment] = [(BOS, False)]
    for index, (user, answer) in enumerate(turns):
        segments.append((USER + user + ASSISTANT + THINK_END, False))
        if answer or index + 1 < len(turns):
            segments.append((answer + EOS, True))
    return segments


def central_sentence(sentences: list[str]) -> str:
    """The sentence sharing the most content words with the rest (first on ties)."""
    bags = [set(_WORD.findall(s.lower())) - _STOP_WORDS for s in sentences]
    def overlap(i: int) -> int:
        return sum(len(bags[i] & bags[j]) for j in range(len(bags)) if j != i)
    return sentences[max(range(len(sentences)), key=overlap)]


def _document_sentences(document: Document) -> list[str]:
    return [s for paragraph in document.paragraphs for s in paragraph]


def _continue_dialogue(rng: random.Random, sentences: list[str]) -> list[tuple[str, str]] | None:
    passage_len, answer_len = rng.randint(2, 4), rng.randint(1, 2)
    two_turns = rng.random() < 0.2
    needed = passage_len + answer_len * (2 if two_turns else 1)
    if len(sentences) < needed:
        return None
    start = rng.randrange(len(sentences) - needed + 1)
    passage = " ".join(sentences[start:start + passage_len])
    first = " ".join(sentences[start + passage_len:start + passage_len + answer_len])
    turns = [(rng.choice(_CONTINUE_REQUESTS).format(passage=passage), first)]
    if two_turns:
        after = start + passage_len + answer_len
        turns.append((rng.choice(_FOLLOW_UPS), " ".join(sentences[after:after + answer_len])))
    return turns


def _summarize_dialogue(rng: random.Random, document: Document) -> list[tuple[str, str]] | None:
    paragraphs = [p for p in document.paragraphs if 3 <= len(p) <= 8]
    if not paragraphs:
        return None
    paragraph = rng.choice(paragraphs)
    answer = rng.choice(_SUMMARY_ANSWERS).format(sentence=central_sentence(paragraph))
    return [(rng.choice(_SUMMARIZE_REQUESTS).format(passage=" ".join(paragraph)), answer)]


def _genre_dialogue(rng: random.Random, document: Document,
                    sentences: list[str]) -> list[tuple[str, str]] | None:
    if len(sentences) < 3:
        return None
    start = rng.randrange(len(sentences) - 2)
    passage = " ".join(sentences[start:start + 3])
    answer = rng.choice(_GENRE_ANSWERS).format(genre=GENRE_DESCRIPTIONS[document.genre])
    return [(rng.choice(_GENRE_REQUESTS).format(passage=passage), answer)]


def make_dialogues(documents: list[Document], count: int, seed: int) -> list[list[tuple[str, str]]]:
    """`count` dialogues drawn from `documents`: half continue, a third
    summarize, a sixth genre. Deterministic for a given seed."""
    if not documents:
        raise ValueError("make_dialogues: no documents")
    rng = random.Random(seed)
    dialogues: list[list[tuple[str, str]]] = []
    attempts = 0
    while len(dialogues) < count:
        attempts += 1
        if attempts > 20 * count:
            raise ValueError(f"make_dialogues: only {len(dialogues)} of {count} after {attempts} tries")
        document = rng.choice(documents)
        sentences = _document_sentences(document)
        kind = rng.random()
        if kind < 0.5:
            turns = _continue_dialogue(rng, sentences)
        elif kind < 0.83:
            turns = _summarize_dialogue(rng, document)
        else:
            turns = _genre_dialogue(rng, document, sentences)
        if turns is not None and all(answer for _, answer in turns):
            dialogues.append(turns)
    return dialogues
