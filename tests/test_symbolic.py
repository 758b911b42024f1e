"""Symbolic tokenizations: hand-checked encodings, exact decoding, robustness, checkpoints."""
import random
import re
from functools import lru_cache
from statistics import mean

import pytest

from coconut.data import Example, generate_prontoqa, generate_prosqa, official
from coconut.tokenizer import ProntoQAFactSentences, ProntoQASymbolic, ProsQAEdgeTokens, ProsQASymbolic
from coconut.tokenizer.prontoqa import parse_fact


@lru_cache(maxsize=None)
def prosqa():
    return tuple(official("prosqa", "valid"))


@lru_cache(maxsize=None)
def prontoqa_valid():
    return tuple(official("prontoqa", "valid"))


@lru_cache(maxsize=None)
def pronto_tok():
    return ProntoQASymbolic.build([official("prontoqa", "train"), prontoqa_valid()])


def reference_answer(text):
    """The reference rule: text after the last '#', commas removed, stripped (eos dropped)."""
    return text.replace("<|endoftext|>", "").split("#")[-1].replace(",", "").strip()


def whole(tok, ex):
    ids = tok.question_ids(ex)
    for i in range(len(ex.steps)):
        ids += tok.step_ids(ex, i)
    return ids + tok.answer_ids(ex)


# ---------------------------------------------------------------------------- ProsQA

def test_prosqa_vocabulary_layout():
    tok = ProsQASymbolic()
    assert tok.vocab_size == 41
    assert (tok.sep_id, tok.question_id, tok.root_id, tok.answer_id) == (32, 33, 34, 35)
    assert (tok.eos_id, tok.bot_id, tok.eot_id, tok.latent_id, tok.pause_id) == (36, 37, 38, 39, 40)


def test_prosqa_first_validation_example_by_hand():
    tok, ex = ProsQASymbolic(), prosqa()[0]
    q = tok.question_ids(ex)
    # "Every shumpus is a rempus. Every shumpus is a yimpus. Every terpus is a fompus. ..."
    # shumpus=2, rempus=5, yimpus=11, terpus=3, fompus=6; "|" = 32.
    assert q[:9] == [2, 5, 32, 2, 11, 32, 3, 6, 32]
    # "... Tom is a terpus. ..." is the 11th sentence: Tom=1.
    assert q[30:33] == [1, 3, 32]
    # "Is Tom a lempus or scrompus?": [Q] lempus=16 scrompus=13 [R] Tom=1.
    assert q[-5:] == [33, 16, 13, 34, 1]
    assert len(q) == 3 * 23 + 5
    # Steps Tom→terpus→brimpus(14)→lempus(16); answer [A] lempus eos.
    assert [tok.step_ids(ex, i) for i in range(3)] == [[1, 3, 32], [3, 14, 32], [14, 16, 32]]
    assert tok.answer_ids(ex) == [35, 16, 36]


def test_prosqa_decode_reproduces_official_sentences():
    tok = ProsQASymbolic()
    lengths = []
    for ex in prosqa():
        body, ending = ex.question.rsplit(" Is ", 1)
        question_sentences = [s.strip() for s in re.findall(r"[^.]+\.", body)] + ["Is " + ending]
        assert tok.decode(tok.question_ids(ex), ex) == "".join(s + "\n" for s in question_sentences)
        for i, step in enumerate(ex.steps):
            assert tok.decode(tok.step_ids(ex, i), ex) == step + "\n"
        answer_text = tok.decode(tok.answer_ids(ex), ex)
        assert answer_text == "### " + ex.answer + "<|endoftext|>"
        full = tok.decode(whole(tok, ex) , ex)
        assert reference_answer(full) == ex.answer
        lengths.append(len(whole(tok, ex)))
    print(f"mean ProsQA symbolic tokens per example: {mean(lengths):.1f}")
    assert 120 <= mean(lengths) <= 130  # 3 per edge (~36 edges) + 5 + 3 per step + 3


def test_prosqa_decodes_a_thought_prompt_and_a_model_guess():
    tok, ex = ProsQASymbolic(), prosqa()[0]
    prompt = tok.question_ids(ex) + [tok.bot_id, tok.latent_id, tok.latent_id, tok.eot_id]
    guess = [14, 16, tok.sep_id, tok.answer_id, 13, tok.eos_id]
    text = tok.decode(prompt + guess, ex)
    assert "Is Tom a lempus or scrompus?\n<|start-latent|><|latent|><|latent|><|end-latent|>" in text
    assert text.endswith("Every brimpus is a lempus.\n### Tom is a scrompus.<|endoftext|>")
    assert reference_answer(text) == "Tom is a scrompus."


def test_prosqa_decode_never_raises_on_garbage():
    tok, ex = ProsQASymbolic(), prosqa()[1]
    rng = random.Random(0)
    for _ in range(300):
        ids = [rng.randrange(-3, tok.vocab_size + 5) for _ in range(rng.randrange(0, 25))]
        assert isinstance(tok.decode(ids, ex), str)
        assert isinstance(tok.decode(ids), str)
    assert tok.decode([tok.answer_id, tok.sep_id, 99], ex) == "### <unk:99>"
    assert tok.decode([3, 14]) == "Every 3 is a 14.\n"  # no example: node indices as names


def test_prosqa_generated_examples_encode():
    tok = ProsQASymbolic()
    for ex in generate_prosqa(50, seed=0):
        assert max(whole(tok, ex)) < tok.vocab_size
        assert tok.decode(tok.step_ids(ex, 0), ex) == ex.steps[0] + "\n"


@pytest.mark.parametrize("kind", [ProsQASymbolic, ProsQAEdgeTokens])
def test_prosqa_whole_question_reading_equals_the_sentence_by_sentence_one(kind):
    tok = kind()
    examples = list(prosqa()) + generate_prosqa(400, seed=3)
    assert all(tok._encode_fast(ex) == tok._encode_checked(ex) for ex in examples)
    # what the fast reading leaves to the checked one: names with dots, a person named
    # "Every", a node beyond the vocabulary, a step that is not an edge
    ex = generate_prosqa(1, seed=4)[0]
    dotted = Example(**{**ex.__dict__, "question": ex.question.replace(" is a ", " is a x.", 1)})
    every = Example("Every is a wumpus. Is Every a wumpus or yumpus?", ["Every is a wumpus."],
                    "Every is a wumpus.", ["Every", "wumpus", "yumpus"], [(0, 1)], 0, 1, 2)
    assert tok._encode_fast(every) == tok._encode_checked(every)
    for odd in (dotted, Example(**{**ex.__dict__, "target": 40}),
                Example(**{**ex.__dict__, "steps": ["Nothing here."]})):
        assert tok._encode_fast(odd) is None


@pytest.mark.parametrize("kind", [ProsQASymbolic, ProsQAEdgeTokens])
def test_prosqa_generated_layout_gives_the_ids_the_text_reads_as(kind):
    """A generated question's ids come from the generator's layout; the same as reading
    its text, over the preset's stream and the out-of-distribution settings' graphs."""
    from coconut.data.ood import SPLITS
    tok = kind()
    examples = generate_prosqa(300, seed=0, start=12000) + generate_prosqa(100, 1, engine="python")
    examples += [ex for s in SPLITS.values() for ex in generate_prosqa(40, seed=2, settings=s)]
    assert all(ex.layout is not None and ex.layout.describes(ex) for ex in examples)
    assert all(tok._encode_fast(ex) == tok._encode_checked(ex) for ex in examples)
    # edited in place or copied with other text: read from the text, not the layout
    ex = examples[0]
    edited = Example(**{**ex.__dict__, "question": ex.question.replace(ex.idx_to_symbol[ex.target], "zz", 1)})
    assert not edited.layout.describes(edited)
    step = generate_prosqa(1, seed=5)[0]
    step.steps[0] = step.steps[-1]
    renamed = generate_prosqa(1, seed=6)[0]
    renamed.idx_to_symbol[renamed.root] = "Someone"
    for odd in (edited, step, renamed):
        assert not odd.layout.describes(odd)
        fast = tok._encode_fast(odd)   # None: names the text lacks, for the checked reading to report
        assert fast is None or fast == tok._encode_checked(odd)
    assert tok._encode_fast(step)[1][0] == tok._encode_fast(step)[1][-1]


def test_prosqa_errors_are_clear():
    ex = prosqa()[0]
    with pytest.raises(ValueError, match="max_nodes"):
        ProsQASymbolic(max_nodes=10).question_ids(ex)
    with pytest.raises(ValueError, match="no ProsQA graph"):
        ProsQASymbolic().question_ids(Example("q?", [], "a"))
    odd = Example(**{**ex.__dict__, "steps": ["Every wibble is a lempus."]})
    with pytest.raises(ValueError, match="step 0 names 'wibble'"):
        ProsQASymbolic().step_ids(odd, 0)


def test_prosqa_checkpoint_round_trip():
    tok = ProsQASymbolic(max_nodes=30)
    again = ProsQASymbolic.from_dict(tok.to_dict())
    assert again.vocab_size == tok.vocab_size == 39
    ex = prosqa()[2]
    assert whole(again, ex) == whole(tok, ex)
    with pytest.raises(ValueError, match="kind"):
        ProsQASymbolic.from_dict({"kind": "prontoqa_symbolic", "words": []})


def test_prosqa_edge_tokens_by_hand():
    tok, ex = ProsQAEdgeTokens(), prosqa()[0]
    assert tok.edge_base == 41 and tok.vocab_size == 41 + 32 * 32
    q = tok.question_ids(ex)
    # shumpus(2)->rempus(5), shumpus->yimpus(11), terpus(3)->fompus(6): one token each
    assert q[:3] == [41 + 2 * 32 + 5, 41 + 2 * 32 + 11, 41 + 3 * 32 + 6]
    assert q[10] == 41 + 1 * 32 + 3                      # "Tom is a terpus." (11th sentence)
    assert q[-5:] == [33, 16, 13, 34, 1] and len(q) == 23 + 5
    # steps, answer and the special ids are ProsQASymbolic's
    plain = ProsQASymbolic()
    assert [tok.step_ids(ex, i) for i in range(3)] == [plain.step_ids(ex, i) for i in range(3)]
    assert tok.answer_ids(ex) == plain.answer_ids(ex)
    assert (tok.eos_id, tok.latent_id) == (plain.eos_id, plain.latent_id)
    assert [tok.edge_of(t) for t in (40, 41, 41 + 3 * 32 + 6, tok.vocab_size - 1, tok.vocab_size)] == \
        [None, (0, 0), (3, 6), (31, 31), None]


def test_prosqa_edge_tokens_decode_as_the_node_tokens_do():
    tok, plain = ProsQAEdgeTokens(), ProsQASymbolic()
    for ex in prosqa()[:60]:
        assert tok.decode(whole(tok, ex), ex) == plain.decode(whole(plain, ex), ex)
        assert {tok.edge_of(t) for t in tok.question_ids(ex)} - {None} == {tuple(e) for e in ex.edges}
    again = ProsQAEdgeTokens.from_dict(tok.to_dict())
    assert again.vocab_size == tok.vocab_size and tok.to_dict()["kind"] == "prosqa_edge_tokens"
    with pytest.raises(ValueError, match="ProsQAEdgeTokens.from_dict"):
        ProsQAEdgeTokens.from_dict(plain.to_dict())
    with pytest.raises(ValueError, match="max_nodes"):
        ProsQAEdgeTokens(max_nodes=10).question_ids(prosqa()[0])


def renamed_example(ex, perm):
    """The same graph with node i called perm[i]: the names move, the text stays."""
    names = [None] * max(perm[i] + 1 for i in range(len(ex.idx_to_symbol)))
    for i, name in enumerate(ex.idx_to_symbol):
        names[perm[i]] = name
    names = [n if n is not None else f"unused{i}" for i, n in enumerate(names)]
    return Example(ex.question, ex.steps, ex.answer, names, [(perm[s], perm[d]) for s, d in ex.edges],
                   perm[ex.root], perm[ex.target], perm[ex.neg_target])


@pytest.mark.parametrize("tok", [ProsQASymbolic(), ProsQAEdgeTokens()], ids=lambda t: t.kind)
def test_relabel_nodes_is_encoding_the_renamed_graph(tok):
    rng = random.Random(3)
    for ex in prosqa()[:20]:
        perm = list(range(tok.max_nodes))
        rng.shuffle(perm)
        ids = whole(tok, ex)
        renamed = tok.relabel_nodes(ids, perm)
        assert renamed == whole(tok, renamed_example(ex, perm)) and renamed != ids
        inverse = sorted(range(tok.max_nodes), key=lambda i: perm[i])
        assert tok.relabel_nodes(renamed, inverse) == ids
    assert tok.relabel_nodes([-100, tok.eos_id, tok.latent_id], perm) == [-100, tok.eos_id, tok.latent_id]
    with pytest.raises(ValueError, match="permutation"):
        tok.relabel_nodes([0], [0] * tok.max_nodes)


# -------------------------------------------------------------------------- ProntoQA

def test_prontoqa_first_validation_example_by_hand():
    tok, ex = pronto_tok(), prontoqa_valid()[0]
    words = [tok.words[i] for i in tok.question_ids(ex)]
    # "Tumpuses are floral. Each jompus is not melodic. ..."
    assert words[:9] == ["Tumpuses", "are", "floral", ".", "Each", "jompus", "is", "not", "melodic"]
    assert words[-9:] == ["True", "or", "false", ":", "Alex", "is", "happy", ".", "\n"]
    assert [tok.words[i] for i in tok.step_ids(ex, 5)] == ["Alex", "is", "happy", ".", "\n"]
    assert tok.answer_ids(ex) == [tok.answer_mark_id, tok.word_to_id["True"], tok.eos_id]
    assert (tok.eos_id, tok.bot_id, tok.eot_id, tok.latent_id, tok.pause_id) == (0, 1, 2, 3, 4)


def test_prontoqa_decode_reproduces_official_text():
    tok = pronto_tok()
    for ex in prontoqa_valid():
        assert tok.decode(tok.question_ids(ex)) == ex.question + "\n"
        for i, step in enumerate(ex.steps):
            assert tok.decode(tok.step_ids(ex, i)) == step + "\n"
        assert tok.decode(tok.answer_ids(ex)) == "### " + ex.answer + "<|endoftext|>"
        assert reference_answer(tok.decode(whole(tok, ex))) == ex.answer
    print(f"ProntoQA symbolic vocabulary: {tok.vocab_size} tokens")
    assert 100 <= tok.vocab_size <= 200


def test_prontoqa_vocabulary_is_deterministic_and_saved():
    examples = generate_prontoqa(30, seed=1)
    a = ProntoQASymbolic.build([examples])
    b = ProntoQASymbolic.build([list(reversed(examples))])
    assert a.words == b.words
    again = ProntoQASymbolic.from_dict(a.to_dict())
    assert again.words == a.words and whole(again, examples[0]) == whole(a, examples[0])
    with pytest.raises(ValueError, match="kind"):
        ProntoQASymbolic.from_dict({"kind": "prosqa_symbolic", "max_nodes": 32})


def test_prontoqa_unknown_word_and_garbage():
    tok = ProntoQASymbolic.build([generate_prontoqa(5, seed=2)])
    with pytest.raises(ValueError, match="'Tumpuses'.*not in the vocabulary"):
        tok.question_ids(prontoqa_valid()[0])
    rng = random.Random(1)
    for _ in range(100):
        ids = [rng.randrange(-2, tok.vocab_size + 3) for _ in range(rng.randrange(0, 20))]
        assert isinstance(tok.decode(ids), str)


# ------------------------------------------------ ProntoQA: one fact token per sentence

def test_parse_fact_reads_every_wording():
    assert parse_fact("Tumpuses are not floral.") == ("tumpus", True, "floral")
    assert parse_fact("Each jompus is an impus.") == ("jompus", False, "impus")
    assert parse_fact("Every wumpus is a shumpus.") == ("wumpus", False, "shumpus")
    assert parse_fact("Brimpuses are grimpuses.") == ("brimpus", False, "grimpus")
    assert parse_fact("Alex is not a tumpus.") == ("Alex", True, "tumpus")
    assert parse_fact("Alex is happy.") == ("Alex", False, "happy")
    assert parse_fact("True or false: Alex is happy.") is None


def test_prontoqa_fact_sentences_first_validation_example_by_hand():
    train = official("prontoqa", "train")
    tok, ex = ProntoQAFactSentences.build([train, prontoqa_valid()]), prontoqa_valid()[0]
    words = ProntoQASymbolic.build([train, prontoqa_valid()])
    assert tok.words == words.words and tok.fact_base == words.vocab_size
    # every (subject, object) pair the names allow, once affirmed and once negated: 1,612 pairs
    pairs = sorted({(s, o) for s, _, o in tok.facts})
    assert len(pairs) == 1612 and sorted(tok.facts) == sorted((s, n, o) for s, o in pairs for n in (False, True))
    assert len(tok.concepts) == tok.max_nodes == 17

    def sentence(subj, negated, obj):
        return [tok.fact_to_id[(subj, negated, obj)]]

    q = tok.question_ids(ex)
    assert len(q) == 25 + 4 + 1 + 1      # 25 facts, "True or false :", the query, newline
    assert q[:3] == sentence("tumpus", False, "floral") + sentence("jompus", True, "melodic") + sentence(
        "tumpus", False, "numpus")
    assert q[25:] == [tok.word_to_id[w] for w in ("True", "or", "false", ":")] + sentence("Alex", False, "happy") + [
        tok.newline_id]
    assert tok.step_ids(ex, 0) == sentence("Alex", False, "tumpus") + sentence("tumpus", False, "gorpus") + [
        tok.newline_id]
    assert tok.step_ids(ex, 5) == sentence("Alex", False, "happy") + [tok.newline_id]
    assert tok.decode(q[1:2] + tok.step_ids(ex, 1)) == ("Every jompus is not melodic. Alex is a gorpus. "
                                                        "Every gorpus is a wumpus.\n")
    assert tok.answer_ids(ex) == words.answer_ids(ex)
    # every wording of a rule is the same token
    assert tok.fact_to_id[parse_fact("Each gorpus is a grimpus.")] == tok.fact_to_id[parse_fact("Gorpuses are grimpuses.")]
    for other in prontoqa_valid():          # every sentence reads back as the original fact
        original = [parse_fact(x.strip()) for x in re.findall(r"[^.]+\.", other.question.replace("True or false:", ""))]
        original += [parse_fact(x.strip()) for step in other.steps for x in re.findall(r"[^.]+\.", step)]
        text = tok.decode(whole(tok, other)).split("###")[0].replace("True or false:", "")
        assert [parse_fact(x.strip()) for x in re.findall(r"[^.\n]+\.", text)] == original
        assert reference_answer(tok.decode(whole(tok, other))) == other.answer


def test_prontoqa_fact_sentences_relabel_keeps_negations_and_saves():
    examples = generate_prontoqa(40, seed=3)
    tok = ProntoQAFactSentences.build([examples])
    assert all(c.endswith("pus") for c in tok.concepts)
    perm = list(range(tok.max_nodes))
    random.Random(5).shuffle(perm)
    rename = {c: tok.concepts[p] for c, p in zip(tok.concepts, perm)}
    inverse = [perm.index(i) for i in range(tok.max_nodes)]
    for ex in examples[:10]:
        ids = whole(tok, ex)
        renamed = tok.relabel_nodes(ids, perm)
        facts = [tok.facts[t - tok.fact_base] for t in ids if t >= tok.fact_base]
        assert [tok.facts[t - tok.fact_base] for t in renamed if t >= tok.fact_base] == [
            (rename.get(s, s), n, rename.get(o, o)) for s, n, o in facts] != facts
        assert any(n for _, n, _ in facts)
        assert tok.relabel_nodes(renamed, inverse) == ids
    assert tok.relabel_nodes([-100, tok.eos_id, tok.word_to_id["not"]], perm) == [-100, tok.eos_id,
                                                                                   tok.word_to_id["not"]]
    with pytest.raises(ValueError, match="permutation"):
        tok.relabel_nodes([0], [0] * tok.max_nodes)
    again = ProntoQAFactSentences.from_dict(tok.to_dict())
    assert tok.to_dict()["kind"] == "prontoqa_fact_sentences"
    assert again.facts == tok.facts and whole(again, examples[0]) == whole(tok, examples[0])
    with pytest.raises(ValueError, match="ProntoQAFactSentences.from_dict"):
        ProntoQAFactSentences.from_dict(ProntoQASymbolic.build([examples]).to_dict())


def test_prontoqa_fact_sentences_errors_and_garbage():
    examples = generate_prontoqa(30, seed=1)
    tok, ex = ProntoQAFactSentences.build([examples]), examples[0]
    unseen = Example(**{**ex.__dict__, "steps": ["Zorp is not a wumpus."]})
    with pytest.raises(ValueError, match=r"step 0: the fact \('Zorp', True, 'wumpus'\) is not in the vocabulary"):
        tok.step_ids(unseen, 0)
    odd = Example(**{**ex.__dict__, "steps": [ex.steps[0], "Wumpuses sing."]})
    with pytest.raises(ValueError, match="step 1 sentence 0 'Wumpuses sing.' is not a fact sentence"):
        tok.step_ids(odd, 1)
    with pytest.raises(ValueError, match="query sentence 0 'Max is blue and red.' is not a fact sentence"):
        tok.question_ids(Example(**{**ex.__dict__, "question": "True or false: Max is blue and red."}))
    with pytest.raises(ValueError, match="no 'True or false:' query"):
        tok.question_ids(Example(**{**ex.__dict__, "question": "Max is blue."}))
    rng = random.Random(1)
    for _ in range(100):
        ids = [rng.randrange(-2, tok.vocab_size + 3) for _ in range(rng.randrange(0, 20))]
        assert isinstance(tok.decode(ids), str)


def test_token_parts_name_each_tokens_pieces():
    """`token_parts` (for `token_init: compositional`): a fact token's subject, object
    and negation; an edge token's source and target."""
    sentences = ProntoQAFactSentences.build([generate_prontoqa(30, seed=1)])
    assert sorted(sentences.token_parts()) == list(range(sentences.fact_base, sentences.vocab_size))
    s, n, o = next(f for f in sentences.facts if f[1])
    assert sentences.token_parts()[sentences.fact_to_id[(s, n, o)]] == (f"subject {s}", f"object {o}", "not")
    assert sentences.token_parts()[sentences.fact_to_id[(s, False, o)]] == (f"subject {s}", f"object {o}", "is")
    edges = ProsQAEdgeTokens(max_nodes=4)
    assert len(edges.token_parts()) == 16 and edges.token_parts()[edges._edge_token(2, 3)] == ("source 2", "target 3")
    assert ProsQASymbolic().token_parts() is None and ProntoQASymbolic(["a"]).token_parts() is None
