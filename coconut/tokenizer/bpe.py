"""GPT-2 byte-level BPE, giving the same ids as Hugging Face's GPT2Tokenizer.

Encoding in three steps, each as GPT-2 defines it:
1. added tokens (`<|endoftext|>`, `<|latent|>`, ...) are cut out of the text first, so
   their text never reaches BPE;
2. the remaining text is split into words by the GPT-2 pattern (contractions, letters,
   numbers, other symbols, whitespace runs);
3. each word's UTF-8 bytes are written as printable stand-in characters and merged by
   the ranked merge rules of merges.txt until no rule applies.

Longer than the package's other modules, and kept whole: added tokens, the word
pattern, the byte stand-ins, the merges, decoding and the Hugging Face file formats are
one tokenizer whose parts must agree id for id with the reference's.
"""
from __future__ import annotations

import functools
import json
import operator
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import regex

from .markers import EOS_TEXT

SHIPPED_DIR = Path(__file__).resolve().parent / "gpt2"
GPT2_CONTEXT_LENGTH = 1024

# The pattern of OpenAI's encoder.py. Contractions are case-sensitive ("I'LL" -> "I", "'",
# "LL"), and "\s+(?!\S)" leaves the last space of a run to prefix the next word.
_WORD_PATTERN = regex.compile(
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
)


def _byte_symbols() -> tuple[str, ...]:
    """The printable character GPT-2 writes for each byte value 0..255.

    Bytes that are already visible Latin-1 characters stand for themselves; the others
    (controls, space, 0x7F-0xA0, 0xAD) take code points 256, 257, ... in byte order, so
    that no vocabulary entry contains whitespace or control characters."""
    visible = {*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
               *range(ord("®"), ord("ÿ") + 1)}
    symbols, next_stand_in = [], 256
    for byte in range(256):
        if byte in visible:
            symbols.append(chr(byte))
        else:
            symbols.append(chr(next_stand_in))
            next_stand_in += 1
    return tuple(symbols)


BYTE_SYMBOLS = _byte_symbols()
SYMBOL_BYTES = {symbol: byte for byte, symbol in enumerate(BYTE_SYMBOLS)}


@dataclass(frozen=True)
class AddedToken:
    """A token matched literally in text before BPE. `normalized` only orders matching:
    Hugging Face cuts out non-normalized tokens (the special ones by default) first."""
    content: str
    id: int
    special: bool = False
    normalized: bool = True


class GPT2Tokenizer:
    """GPT-2 byte-level BPE plus added tokens. `GPT2Tokenizer()` loads the GPT-2
    vocabulary shipped in coconut/tokenizer/gpt2."""

    def __init__(self, vocab: Mapping[str, int] | None = None,
                 merges: Sequence[tuple[str, str]] | None = None):
        """`vocab` {token: id} and `merges` [(left, right), ...] best first; neither for
        the shipped GPT-2 files."""
        if vocab is None and merges is None:
            self._setup(*_read_model_files(SHIPPED_DIR / "vocab.json",
                                           SHIPPED_DIR / "merges.txt"))
        elif vocab is None or merges is None:
            raise TypeError("GPT2Tokenizer: give both vocab and merges, or neither")
        else:
            self._setup(vocab, merges, "vocab", lambda rank: f"merges[{rank}]")

    def _setup(self, vocab: Mapping[str, int], merges: Sequence[tuple[str, str]],
               vocab_source: str, locate_merge: Callable[[int], str]) -> None:
        _check_vocab(vocab, vocab_source)
        self._vocab: dict[str, int] = dict(vocab)
        # Token of every id: the vocabulary's, then added tokens beyond it.
        self._tokens: list[str] = sorted(self._vocab, key=self._vocab.__getitem__)
        self._ranks = _rank_merges(merges, self._vocab, locate_merge)
        # Bytes of every id, for decode.
        self._id_bytes: list[bytes] = [_token_bytes(token) for token in self._tokens]
        self._added: dict[str, AddedToken] = {}
        self._split_patterns: list[re.Pattern] = []
        # Word -> ids; words repeat so much across a data set that this makes encoding
        # cost mostly the pre-tokenizer regex.
        self._encode_word = functools.lru_cache(maxsize=1 << 18)(self._encode_word_uncached)
        if EOS_TEXT in self._vocab:
            self._register(AddedToken(EOS_TEXT, self._vocab[EOS_TEXT], special=True,
                                      normalized=False))
            self._rebuild_split_patterns()

    # ----- construction from files ---------------------------------------------------

    @classmethod
    def from_files(cls, vocab_path: str | Path, merges_path: str | Path) -> GPT2Tokenizer:
        """vocab.json ({token: id}) and merges.txt (one "left right" rule per line, best
        first; a leading "#version" line is skipped)."""
        tokenizer = cls.__new__(cls)
        tokenizer._setup(*_read_model_files(Path(vocab_path), Path(merges_path)))
        return tokenizer

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> GPT2Tokenizer:
        """A Hugging Face tokenizer directory: vocab.json + merges.txt (or, as written by
        transformers 5, tokenizer.json), and added tokens from added_tokens.json,
        tokenizer_config.json "added_tokens_decoder" and tokenizer.json "added_tokens"."""
        directory = Path(directory)
        if not directory.is_dir():
            raise FileNotFoundError(f"{directory}: not a tokenizer directory")
        vocab_path, merges_path = directory / "vocab.json", directory / "merges.txt"
        tokenizer_json_path = directory / "tokenizer.json"
        added: list[tuple[AddedToken, str]] = []
        if vocab_path.is_file() and merges_path.is_file():
            tokenizer = cls.from_files(vocab_path, merges_path)
            if tokenizer_json_path.is_file():
                added += _read_tokenizer_json(tokenizer_json_path)[2]
        elif tokenizer_json_path.is_file():
            vocab, merges, from_json = _read_tokenizer_json(tokenizer_json_path)
            tokenizer = cls.__new__(cls)
            tokenizer._setup(vocab, merges, f"{tokenizer_json_path}: model.vocab",
                             lambda rank: f"{tokenizer_json_path}: model.merges[{rank}]")
            added += from_json
        else:
            raise FileNotFoundError(
                f"{directory}: needs vocab.json and merges.txt, or tokenizer.json")
        config_path = directory / "tokenizer_config.json"
        if config_path.is_file():
            added += _read_tokenizer_config(config_path)
        added_path = directory / "added_tokens.json"
        if added_path.is_file():
            added += _read_added_tokens_json(added_path)
        tokenizer._add_from_files(added)
        return tokenizer

    def _add_from_files(self, added: list[tuple[AddedToken, str]]) -> None:
        """Register added tokens at the ids the files give; new ids must continue the
        vocabulary without gaps, as they would have when they were added."""
        by_id: dict[int, tuple[AddedToken, str]] = {}
        for token, where in added:
            seen = by_id.get(token.id)
            if seen is not None and seen[0].content != token.content:
                raise ValueError(f"{where}: id {token.id} is {token.content!r}, but "
                                 f"{seen[1]} gives it to {seen[0].content!r}")
            if seen is None or token.special:   # any file marking it special wins
                by_id[token.id] = (token, where)
        for token_id in sorted(by_id):
            token, where = by_id[token_id]
            if token_id < len(self._vocab):
                if self._tokens[token_id] != token.content:
                    raise ValueError(
                        f"{where}: added token {token.content!r} has id {token_id}, which "
                        f"the vocabulary gives to {self._tokens[token_id]!r}")
            elif token_id != len(self):
                raise ValueError(f"{where}: added token {token.content!r} has id {token_id}; "
                                 f"the next free id is {len(self)}")
            elif token.content in self._vocab or token.content in self._added:
                raise ValueError(f"{where}: added token {token.content!r} (id {token_id}) "
                                 f"already has id {self.token_to_id(token.content)}")
            self._register(token)
        self._rebuild_split_patterns()

    # ----- vocabulary -----------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._id_bytes)

    @property
    def eos_token_id(self) -> int:
        return self.token_to_id(EOS_TEXT)

    @property
    def added_tokens(self) -> list[AddedToken]:
        return sorted(self._added.values(), key=lambda token: token.id)

    def token_to_id(self, token: str) -> int:
        """Id of a vocabulary token (in GPT-2's byte-symbol spelling, e.g. "Ġthe") or of
        an added token."""
        if token in self._added:
            return self._added[token].id
        if token in self._vocab:
            return self._vocab[token]
        raise KeyError(f"token {token!r} is neither in the vocabulary nor an added token")

    def id_to_token(self, token_id: int) -> str:
        return self._tokens[self._check_id(token_id, "id_to_token")]

    def add_tokens(self, tokens: Iterable[str], special: bool = False) -> list[int]:
        """Make each string an added token and return its id. As in Hugging Face, a
        string already in the vocabulary keeps its id (but is now cut out of text before
        BPE); a new one gets the next id after the current size."""
        if isinstance(tokens, str):
            raise TypeError("add_tokens takes a list of strings, not one string")
        ids = []
        for token in tokens:
            if not isinstance(token, str) or not token:
                raise ValueError(f"add_tokens: {token!r} is not a non-empty string")
            if token not in self._added:
                token_id = self._vocab.get(token, len(self))
                self._register(AddedToken(token, token_id, special=special,
                                          normalized=not special))
            ids.append(self._added[token].id)
        self._rebuild_split_patterns()
        return ids

    def _register(self, token: AddedToken) -> None:
        self._added[token.content] = token
        if token.id == len(self._tokens):
            self._tokens.append(token.content)
            self._id_bytes.append(_token_bytes(token.content))

    def _rebuild_split_patterns(self) -> None:
        """One alternation per matching round, longest first so that at any position
        the longest added token wins (as Hugging Face's leftmost-longest matcher)."""
        self._split_patterns = []
        for normalized in (False, True):
            contents = sorted((t.content for t in self._added.values()
                               if t.normalized == normalized), key=len, reverse=True)
            if contents:
                pattern = re.compile("(" + "|".join(map(re.escape, contents)) + ")")
                self._split_patterns.append(pattern)

    def _check_id(self, token_id, where: str) -> int:
        try:
            index = operator.index(token_id)
        except TypeError:
            raise TypeError(f"{where}: id {token_id!r} is not an integer") from None
        if not 0 <= index < len(self._id_bytes):
            raise ValueError(f"{where}: id {index} is outside the vocabulary "
                             f"(ids 0..{len(self._id_bytes) - 1})")
        return index

    # ----- encoding and decoding ------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"encode takes a str, got {type(text).__name__}")
        ids: list[int] = []
        for piece in self._split_added(text):
            if isinstance(piece, int):
                ids.append(piece)
            else:
                for word in _WORD_PATTERN.findall(piece):
                    ids.extend(self._encode_word(word))
        return ids

    def _split_added(self, text: str) -> list[str | int]:
        """Text pieces interleaved with the ids of the added tokens found between them."""
        pieces: list[str | int] = [text]
        for pattern in self._split_patterns:
            next_pieces: list[str | int] = []
            for piece in pieces:
                if isinstance(piece, int):
                    next_pieces.append(piece)
                    continue
                # split() with a group alternates text, match, text, ...
                for position, part in enumerate(pattern.split(piece)):
                    if position % 2:
                        next_pieces.append(self._added[part].id)
                    elif part:
                        next_pieces.append(part)
            pieces = next_pieces
        return pieces

    def _encode_word_uncached(self, word: str) -> tuple[int, ...]:
        symbols = [BYTE_SYMBOLS[byte] for byte in word.encode("utf-8")]
        ranks = self._ranks
        while len(symbols) > 1:
            best = min(zip(symbols, symbols[1:]), key=lambda pair: ranks.get(pair, _NO_RANK))
            if best not in ranks:
                break
            left, right = best
            merged, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and symbols[i] == left and symbols[i + 1] == right:
                    merged.append(left + right)
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            symbols = merged
        return tuple(self._vocab[symbol] for symbol in symbols)

    def decode(self, ids: Iterable[int]) -> str:
        """Text of the ids; byte sequences that are not valid UTF-8 become U+FFFD.

        As in Hugging Face, the bytes of all ids, added tokens included, are joined
        before decoding, so a character's bytes may even come from different tokens."""
        id_bytes, size, chunks = self._id_bytes, len(self._id_bytes), []
        for position, token_id in enumerate(ids):
            if type(token_id) is not int or not 0 <= token_id < size:  # rare: check fully
                token_id = self._check_id(token_id, f"decode (position {position})")
            chunks.append(id_bytes[token_id])
        return b"".join(chunks).decode("utf-8", errors="replace")

    # ----- saving ---------------------------------------------------------------------

    def save_pretrained(self, directory: str | Path) -> None:
        """Write vocab.json, merges.txt, added_tokens.json, special_tokens_map.json and
        tokenizer_config.json, the layout transformers' GPT2Tokenizer and AutoTokenizer
        load (versions 4 and 5)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / "vocab.json", "w", encoding="utf-8") as f:
            json.dump(self._vocab, f, ensure_ascii=False, indent=2, sort_keys=True)
            f.write("\n")
        merges = sorted(self._ranks, key=self._ranks.__getitem__)
        with open(directory / "merges.txt", "w", encoding="utf-8") as f:
            f.write("#version: 0.2\n")
            f.writelines(f"{left} {right}\n" for left, right in merges)
        beyond_vocab = {t.content: t.id for t in self.added_tokens if t.id >= len(self._vocab)}
        _write_json(directory / "added_tokens.json", beyond_vocab)
        special = {}
        if EOS_TEXT in self._vocab:
            special = {"bos_token": EOS_TEXT, "eos_token": EOS_TEXT, "unk_token": EOS_TEXT}
        _write_json(directory / "special_tokens_map.json", special)
        config = {
            "tokenizer_class": "GPT2Tokenizer",
            "add_prefix_space": False,
            "add_bos_token": False,
            "clean_up_tokenization_spaces": False,   # decode() never edits spaces
            "errors": "replace",
            "model_max_length": GPT2_CONTEXT_LENGTH,
            **special,
            "added_tokens_decoder": {
                str(t.id): {"content": t.content, "lstrip": False, "normalized": t.normalized,
                            "rstrip": False, "single_word": False, "special": t.special}
                for t in self.added_tokens},
        }
        _write_json(directory / "tokenizer_config.json", config)


_NO_RANK = float("inf")


def _token_bytes(token: str) -> bytes:
    """A token's bytes: its symbols mapped back to bytes, or, for an added token with a
    character outside the 256 byte symbols, its UTF-8 (Hugging Face's fallback)."""
    if _NOT_A_BYTE_SYMBOL.search(token):
        return token.encode("utf-8")
    return token.translate(_SYMBOL_TO_LATIN1).encode("latin-1")


_NOT_A_BYTE_SYMBOL = re.compile("[^" + "".join(map(re.escape, BYTE_SYMBOLS)) + "]")
_SYMBOL_TO_LATIN1 = {ord(symbol): byte for symbol, byte in SYMBOL_BYTES.items()}


# ----- file readers: each error names the file and the place -----------------------------

def _read_json(path: Path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: file not found") from None
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 (byte {error.start})") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: invalid JSON at line {error.lineno}, column "
                         f"{error.colno}: {error.msg}") from None


def _read_model_files(vocab_path: Path, merges_path: Path):
    """Arguments for GPT2Tokenizer._setup from vocab.json and merges.txt."""
    vocab = _read_vocab(vocab_path)
    rules, line_numbers, name = _read_merges(merges_path)
    return vocab, rules, str(vocab_path), lambda rank: f"{name}, line {line_numbers[rank]}"


def _read_vocab(path: Path) -> dict[str, int]:
    vocab = _read_json(path)
    if not isinstance(vocab, dict):
        raise ValueError(f"{path}: expected a JSON object {{token: id}}, "
                         f"got {type(vocab).__name__}")
    return vocab


def _check_vocab(vocab: Mapping[str, int], source: str) -> None:
    """Ids must be exactly 0..n-1 and every byte must have its single-symbol token, or
    some text could not be encoded or some id not decoded."""
    seen: dict[int, str] = {}
    for token, token_id in vocab.items():
        if not isinstance(token, str) or not token:
            raise ValueError(f"{source}: vocabulary key {token!r} is not a non-empty string")
        if isinstance(token_id, bool) or not isinstance(token_id, int):
            raise ValueError(f"{source}: vocabulary entry {token!r} has id {token_id!r}, "
                             "not an integer")
        if token_id in seen:
            raise ValueError(f"{source}: id {token_id} is given to both {seen[token_id]!r} "
                             f"and {token!r}")
        seen[token_id] = token
    for token_id in range(len(vocab)):
        if token_id not in seen:
            raise ValueError(f"{source}: ids must be 0..{len(vocab) - 1}; {token_id} is "
                             f"missing (largest id {max(seen)})")
    missing = [s for s in BYTE_SYMBOLS if s not in vocab]
    if missing:
        raise ValueError(f"{source}: the vocabulary lacks the byte tokens {missing[:5]!r}"
                         f"{' ...' if len(missing) > 5 else ''}")


def _read_merges(path: Path) -> tuple[list[tuple[str, str]], list[int], str]:
    """The rules, best first, with their line numbers and the file name for errors."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: file not found") from None
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 (byte {error.start})") from None
    rules, line_numbers = [], []
    for number, line in enumerate(lines, start=1):
        if line.endswith("\r"):
            line = line[:-1]
        if (number == 1 and line.startswith("#version")) or not line:
            continue
        left, space, right = line.partition(" ")
        if not left or not right or " " in right:
            raise ValueError(f"{path}, line {number}: expected two tokens separated by one "
                             f"space, got {line!r}")
        rules.append((left, right))
        line_numbers.append(number)
    return rules, line_numbers, str(path)


def _rank_merges(rules: Sequence[tuple[str, str]], vocab: Mapping[str, int],
                 locate: Callable[[int], str]) -> dict[tuple[str, str], int]:
    """{(left, right): rank}, lower merges first. `locate(rank)` names the rule's place
    in its file for error messages."""
    ranks: dict[tuple[str, str], int] = {}
    for rank, rule in enumerate(rules):
        if not isinstance(rule, (tuple, list)) or len(rule) != 2:
            raise ValueError(f"{locate(rank)}: {rule!r} is not a (left, right) pair")
        left, right = rule
        pair = (left, right)
        if left not in vocab or right not in vocab or left + right not in vocab:
            missing = next(p for p in (left, right, left + right) if p not in vocab)
            raise ValueError(f"{locate(rank)}: merge {left!r} {right!r} uses {missing!r}, "
                             "which is not in the vocabulary")
        if pair in ranks:
            raise ValueError(f"{locate(rank)}: merge {left!r} {right!r} repeats the rule "
                             f"of rank {ranks[pair]}")
        ranks[pair] = rank
    return ranks


def _added_token(entry: Mapping, token_id, where: str) -> AddedToken:
    """An added-token record of tokenizer_config.json or tokenizer.json; the matching
    options this tokenizer does not implement are refused rather than ignored."""
    if not isinstance(entry, Mapping) or not isinstance(entry.get("content"), str) \
            or not entry["content"]:
        raise ValueError(f"{where}: expected an object with a non-empty \"content\"")
    try:
        token_id = int(token_id)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: id {token_id!r} is not an integer") from None
    for option in ("lstrip", "rstrip", "single_word"):
        if entry.get(option):
            raise ValueError(f"{where}: added token {entry['content']!r} sets {option}, "
                             "which this tokenizer does not support")
    special = bool(entry.get("special", False))
    return AddedToken(entry["content"], token_id, special=special,
                      normalized=bool(entry.get("normalized", not special)))


def _read_tokenizer_config(path: Path) -> list[tuple[AddedToken, str]]:
    config = _read_json(path)
    if not isinstance(config, dict):
        raise ValueError(f"{path}: expected a JSON object")
    for key, supported in (("add_prefix_space", False), ("add_bos_token", False)):
        if config.get(key, supported) != supported:
            raise ValueError(f"{path}: {key}={config[key]!r} is not supported")
    decoder = config.get("added_tokens_decoder", {})
    if not isinstance(decoder, dict):
        raise ValueError(f"{path}: \"added_tokens_decoder\" must be an object {{id: token}}")
    return [(_added_token(entry, token_id, f"{path}: added_tokens_decoder[{token_id!r}]"),
             str(path)) for token_id, entry in decoder.items()]


def _read_added_tokens_json(path: Path) -> list[tuple[AddedToken, str]]:
    added = _read_json(path)
    if not isinstance(added, dict):
        raise ValueError(f"{path}: expected a JSON object {{token: id}}")
    return [(_added_token({"content": content}, token_id, f"{path}: {content!r}"), str(path))
            for content, token_id in added.items()]


def _read_tokenizer_json(path: Path):
    """vocab, merges and added tokens of a `tokenizers` serialization, refusing any
    pipeline other than GPT-2's (byte-level BPE, no normalizer, no prefix space)."""
    data = _read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        raise ValueError(f"{path}: expected a JSON object with a \"model\" object")
    model = data["model"]
    if model.get("type") != "BPE":
        raise ValueError(f"{path}: model.type is {model.get('type')!r}, not 'BPE'")
    for key in ("continuing_subword_prefix", "end_of_word_suffix", "dropout"):
        if model.get(key):
            raise ValueError(f"{path}: model.{key}={model[key]!r} is not supported")
    if data.get("normalizer") is not None:
        raise ValueError(f"{path}: a normalizer is not supported")
    pre = data.get("pre_tokenizer")
    if not isinstance(pre, dict) or pre.get("type") != "ByteLevel" \
            or pre.get("add_prefix_space") or not pre.get("use_regex", True):
        raise ValueError(f"{path}: pre_tokenizer must be ByteLevel without prefix space, "
                         f"got {pre!r}")
    vocab = model.get("vocab")
    if not isinstance(vocab, dict):
        raise ValueError(f"{path}: model.vocab must be an object {{token: id}}")
    merges = []
    for index, rule in enumerate(model.get("merges") or []):
        if isinstance(rule, str):
            rule = rule.split(" ")
        if not isinstance(rule, list) or len(rule) != 2 \
                or not all(isinstance(part, str) and part for part in rule):
            raise ValueError(f"{path}: model.merges[{index}] is not a pair of tokens")
        merges.append((rule[0], rule[1]))
    added = []
    for index, entry in enumerate(data.get("added_tokens") or []):
        where = f"{path}: added_tokens[{index}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected an object")
        added.append((_added_token(entry, entry.get("id"), where), where))
    return vocab, merges, added


def _write_json(path: Path, value) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, ensure_ascii=False, indent=2)
        f.write("\n")
