"""coconut.tokenizer.bpe against transformers' GPT-2 tokenizer on the same files."""
import hashlib
import json
import random
import shutil

import pytest

transformers = pytest.importorskip("transformers")

from coconut.data import official  # noqa: E402
from coconut.tokenizer.bpe import SHIPPED_DIR, GPT2Tokenizer  # noqa: E402

# sha256 of OpenAI's GPT-2 encoder files (encoder.json, vocab.bpe) under their Hugging Face names
GPT2_SHA256 = {
    "vocab.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
    "merges.txt": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
}
LATENT_TOKENS = ["<|start-latent|>", "<|end-latent|>", "<|latent|>"]

HANDCRAFTED = [
    "",
    "Hello world",
    " Hello world",
    "don't DON'T I'LL I'll we've they're she'd I'm it's 'tis",
    "café naïve résumé Ångström ÉCOLE",
    "e\u0301 combining accent, n\u0303",
    "日本語のテキスト 中文 한국어",
    "emoji 😀👍🏽 👨‍👩‍👧 ❤️",
    "tabs\tand\t\ttabs",
    "runs     of   spaces",
    "trailing spaces   ",
    "   leading spaces",
    "new\nlines\n\n\nand \n \n mixed\r\n",
    "\n",
    "  \n\t ",
    "digits 0 12 345 6789 3.14159 1,000,000 -42",
    "Arabic-Indic ٣٤٥ superscript x² fraction ½",
    "unicode spaces a\u00a0b\u2009c\u3000d\u2028e\u202ff",
    "controls \x1c\x1d\x1e\x1f \x85 \x00 \x7f \ufeff \u200b \u180e",
    "symbols !@#$%^&*()_+-=[]{}|;':\",./<>?`~ <<48/2=24>>",
    "### 300",
    "Tom is a lempus.",
    "<|endoftext|>",
    "a<|endoftext|>b",
    "x<|latent|><|latent|> y",
    "<|start-latent|><|latent|><|latent|><|end-latent|>",
    "question?\n<|start-latent|><|latent|><|end-latent|>### 18<|endoftext|>",
    " <|latent|> spaced <|latent|>  ",
    "<|latent|>don't<|end-latent|>123",
    "<|latent|<|latent|>|>",
    "<|start-latent|<|end-latent|>",
]


def example_texts(examples):
    """The text pieces the curriculum encodes, in the reference's forms."""
    texts = []
    for example in examples:
        texts.append(example.question + "\n")
        texts += [step + "\n" for step in example.steps]
        texts.append("### " + example.answer)
    return texts


CORPUS = example_texts(official("prosqa", "valid")) + example_texts(official("gsm8k", "valid"))


def random_strings(count, seed):
    """Mixed-script strings: letters, marks, numbers, symbols and every kind of space,
    where the pre-tokenizer's Unicode classes matter."""
    alphabet = ("abcXYZ'’ 0123456789 \t\n\r\x0b\x0c\x1c\x85\xa0\u2003\u3000"
                "éÅß中語한😀🏽\u0301\u0303٣²½.,!?$#<>|-_"
                "ـ\u200d\ufeffŉǅ")
    words = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", " 's", "<|latent|>",
             "<|endoftext|>", "  ", "\n\n", "###"]
    generator = random.Random(seed)
    out = []
    for _ in range(count):
        pieces = [generator.choice(alphabet) if generator.random() < 0.8
                  else generator.choice(words) for _ in range(generator.randint(1, 40))]
        out.append("".join(pieces))
    return out


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("hf_gpt2")
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(SHIPPED_DIR / name, directory / name)
    return directory


@pytest.fixture(scope="module")
def hf(hf_dir):
    tokenizer = transformers.GPT2Tokenizer.from_pretrained(str(hf_dir))
    tokenizer.add_tokens(LATENT_TOKENS)
    return tokenizer


@pytest.fixture(scope="module")
def ours():
    tokenizer = GPT2Tokenizer.from_files(SHIPPED_DIR / "vocab.json",
                                         SHIPPED_DIR / "merges.txt")
    tokenizer.add_tokens(LATENT_TOKENS)
    return tokenizer


def hf_encode(hf, texts):
    return hf(texts, add_special_tokens=False)["input_ids"]


def test_shipped_files_are_openai_gpt2_files():
    for name, digest in GPT2_SHA256.items():
        assert hashlib.sha256((SHIPPED_DIR / name).read_bytes()).hexdigest() == digest, name
    tokenizer = GPT2Tokenizer()
    assert len(tokenizer) == 50257
    assert tokenizer.eos_token_id == 50256
    assert tokenizer.encode("Hello world") == [15496, 995]


def test_added_latent_tokens_get_the_reference_ids(ours, hf):
    fresh = GPT2Tokenizer()
    assert fresh.add_tokens(LATENT_TOKENS) == [50257, 50258, 50259]
    assert len(fresh) == len(hf) == 50260
    for token, expected in zip(LATENT_TOKENS, [50257, 50258, 50259]):
        assert ours.token_to_id(token) == expected == hf.convert_tokens_to_ids(token)
        assert ours.id_to_token(expected) == token
    assert ours.token_to_id("<<") == 16791          # the row the new embeddings copy
    assert ours.id_to_token(16791) == "<<"
    assert ours.id_to_token(220) == "Ġ"
    assert ours.encode("x<|latent|><|latent|> y") == [87, 50259, 50259, 331]


def test_corpus_ids_equal_transformers(ours, hf):
    assert len(CORPUS) > 3000
    expected = hf_encode(hf, CORPUS)
    mismatches = [(text, ids, ours.encode(text)) for text, ids in zip(CORPUS, expected)
                  if ours.encode(text) != ids]
    assert not mismatches[:3]


@pytest.mark.parametrize("text", HANDCRAFTED)
def test_handcrafted_ids_equal_transformers(ours, hf, text):
    assert ours.encode(text) == hf_encode(hf, [text])[0]


def test_random_unicode_ids_equal_transformers(ours, hf):
    texts = random_strings(400, seed=7)
    expected = hf_encode(hf, texts)
    mismatches = [(text, ids, ours.encode(text)) for text, ids in zip(texts, expected)
                  if ours.encode(text) != ids]
    assert not mismatches[:3]


def test_decode_round_trips_and_equals_transformers(ours, hf):
    texts = HANDCRAFTED + CORPUS[::10] + random_strings(100, seed=8)
    for text in texts:
        ids = ours.encode(text)
        assert ours.decode(ids) == text
        assert ours.decode(ids) == hf.decode(ids)


def test_decode_of_broken_utf8_equals_transformers(ours, hf):
    # Random ids split multi-byte characters; added ids sit between the pieces.
    generator = random.Random(3)
    emoji = ours.encode("😀")
    assert len(emoji) == 2
    cases = [emoji[:1], emoji[1:], [emoji[0], 50259, emoji[1]], [emoji[0], 50256, emoji[1]]]
    cases += [[generator.randrange(len(ours)) for _ in range(generator.randint(1, 30))]
              for _ in range(300)]
    for ids in cases:
        assert ours.decode(ids) == hf.decode(ids), ids
    assert "\ufffd" in ours.decode(emoji[:1])


def test_decode_rejects_ids_outside_the_vocabulary(ours):
    with pytest.raises(ValueError, match="50260"):
        ours.decode([1, 2, 50260])
    with pytest.raises(ValueError, match="-1"):
        ours.decode([-1])
    with pytest.raises(TypeError):
        ours.decode([1.5])
    with pytest.raises(KeyError, match="nonexistent"):
        ours.token_to_id("nonexistent-token")


def test_add_tokens_like_transformers(hf_dir):
    hf = transformers.GPT2Tokenizer.from_pretrained(str(hf_dir))
    ours = GPT2Tokenizer()
    new = ["hello", "<|x|>", "<|x|>", "<|xy|>"]
    hf.add_tokens(new)
    ids = ours.add_tokens(new)
    # "hello" keeps its vocabulary id but is now cut out of words before BPE.
    assert ids == [31373, 50257, 50257, 50258]
    assert len(ours) == len(hf) == 50259
    for text in ["helloworld say hello", "<|xy|><|x|>y<|x|", "a<|x|>hello<|xy|>b"]:
        assert ours.encode(text) == hf_encode(hf, [text])[0]
    # An added token spelled in byte symbols decodes to those bytes, joined with the
    # bytes around it: "😀"'s head plus a tail "\x98\x80" gives "😘" and a stray byte.
    from coconut.tokenizer.bpe import BYTE_SYMBOLS
    emoji_tail = BYTE_SYMBOLS[0x98] + BYTE_SYMBOLS[0x80]
    hf.add_tokens([emoji_tail])
    tail_id = ours.add_tokens([emoji_tail])[0]
    head = ours.encode("😀")[0]
    assert ours.decode([tail_id]) == hf.decode([tail_id]) == "\ufffd\ufffd"
    assert ours.decode([head, tail_id]) == hf.decode([head, tail_id]) == "😘\ufffd"
    with pytest.raises(ValueError):
        ours.add_tokens([""])
    with pytest.raises(TypeError):
        ours.add_tokens("<|x|>")


def test_save_pretrained_loads_in_transformers(ours, tmp_path):
    ours.save_pretrained(tmp_path)
    texts = HANDCRAFTED + CORPUS[:200]
    for loader in (transformers.GPT2Tokenizer, transformers.AutoTokenizer):
        loaded = loader.from_pretrained(str(tmp_path))
        assert len(loaded) == len(ours) == 50260
        assert loaded.eos_token_id == 50256
        assert hf_encode(loaded, texts) == [ours.encode(text) for text in texts]
        assert loaded.decode(ours.encode(texts[-1])) == texts[-1]
    again = GPT2Tokenizer.from_pretrained(tmp_path)
    assert len(again) == 50260
    assert [again.encode(t) for t in texts] == [ours.encode(t) for t in texts]


def test_from_pretrained_reads_a_transformers_directory(hf, tmp_path):
    # transformers 5 writes tokenizer.json + tokenizer_config.json only.
    hf.save_pretrained(str(tmp_path / "v5"))
    assert not (tmp_path / "v5" / "vocab.json").exists()
    from_json = GPT2Tokenizer.from_pretrained(tmp_path / "v5")
    # The classic layout: vocab.json, merges.txt, added_tokens.json.
    classic = tmp_path / "classic"
    classic.mkdir()
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(SHIPPED_DIR / name, classic / name)
    (classic / "added_tokens.json").write_text(
        json.dumps({token: 50257 + i for i, token in enumerate(LATENT_TOKENS)}))
    from_added_json = GPT2Tokenizer.from_pretrained(classic)
    # Both layouts at once, as on the Hub: the added tokens are only in tokenizer.json.
    both = tmp_path / "v5"
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(SHIPPED_DIR / name, both / name)
    from_both = GPT2Tokenizer.from_pretrained(both)
    texts = HANDCRAFTED + CORPUS[:100]
    expected = hf_encode(hf, texts)
    for tokenizer in (from_json, from_added_json, from_both):
        assert len(tokenizer) == 50260
        assert [tokenizer.encode(text) for text in texts] == expected


def write_tokenizer_files(directory, vocab_text=None, merges_text=None):
    directory.mkdir(exist_ok=True)
    (directory / "vocab.json").write_text(
        vocab_text if vocab_text is not None else (SHIPPED_DIR / "vocab.json").read_text())
    (directory / "merges.txt").write_text(
        merges_text if merges_text is not None else (SHIPPED_DIR / "merges.txt").read_text())
    return directory / "vocab.json", directory / "merges.txt"


def test_bad_files_raise_with_file_and_place(tmp_path):
    good_merges = (SHIPPED_DIR / "merges.txt").read_text().split("\n")
    vocab = json.loads((SHIPPED_DIR / "vocab.json").read_text())

    with pytest.raises(FileNotFoundError, match="nowhere.json"):
        GPT2Tokenizer.from_files(tmp_path / "nowhere.json", SHIPPED_DIR / "merges.txt")

    paths = write_tokenizer_files(tmp_path / "json", vocab_text='{"a": 0,')
    with pytest.raises(ValueError, match=r"vocab\.json: invalid JSON at line 1"):
        GPT2Tokenizer.from_files(*paths)

    paths = write_tokenizer_files(tmp_path / "list", vocab_text="[1, 2]")
    with pytest.raises(ValueError, match=r"vocab\.json: expected a JSON object"):
        GPT2Tokenizer.from_files(*paths)

    gap = dict(vocab)
    gap["!"] = 60000
    paths = write_tokenizer_files(tmp_path / "gap", vocab_text=json.dumps(gap))
    with pytest.raises(ValueError, match=r"vocab\.json: ids must be 0\.\.50256; 0 is missing"):
        GPT2Tokenizer.from_files(*paths)

    three_parts = good_merges[:5] + ["Ġ t h"] + good_merges[5:]
    paths = write_tokenizer_files(tmp_path / "parts", merges_text="\n".join(three_parts))
    with pytest.raises(ValueError, match=r"merges\.txt, line 6: expected two tokens"):
        GPT2Tokenizer.from_files(*paths)

    unknown = good_merges[:10] + ["Ġ zzzqqq"] + good_merges[10:]
    paths = write_tokenizer_files(tmp_path / "unknown", merges_text="\n".join(unknown))
    with pytest.raises(ValueError, match=r"merges\.txt, line 11: .*'zzzqqq'"):
        GPT2Tokenizer.from_files(*paths)

    repeated = good_merges[:4] + [good_merges[2]] + good_merges[4:]
    paths = write_tokenizer_files(tmp_path / "repeat", merges_text="\n".join(repeated))
    with pytest.raises(ValueError, match=r"merges\.txt, line 5: .*repeats"):
        GPT2Tokenizer.from_files(*paths)

    directory = tmp_path / "added"
    write_tokenizer_files(directory)
    (directory / "added_tokens.json").write_text(json.dumps({"<|latent|>": 50300}))
    with pytest.raises(ValueError, match=r"added_tokens\.json.*50300.*next free id is 50257"):
        GPT2Tokenizer.from_pretrained(directory)

    other_model = tmp_path / "wordpiece"
    other_model.mkdir()
    (other_model / "tokenizer.json").write_text(json.dumps({"model": {"type": "WordPiece"}}))
    with pytest.raises(ValueError, match=r"tokenizer\.json: model\.type is 'WordPiece'"):
        GPT2Tokenizer.from_pretrained(other_model)

    with pytest.raises(FileNotFoundError, match="needs vocab.json"):
        GPT2Tokenizer.from_pretrained(tmp_path)
