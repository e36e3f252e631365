import pytest
import torch

from grokkit.tasks import OPERATIONS, POSITIONS, ModularTask, Vocabulary, stack_members


@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.35])
def test_split_sizes_disjoint_and_complete(fraction):
    vocab = Vocabulary(113, (107, 113))
    split = ModularTask("add", 107).split(vocab, fraction, seed=3)
    n = 107 * 107
    assert len(split.train) == round(fraction * n)
    assert len(split.train) + len(split.test) == n
    key = lambda t: set(map(tuple, t[:, :2].tolist()))  # noqa: E731
    assert key(split.train.tokens).isdisjoint(key(split.test.tokens))
    assert len(key(split.train.tokens) | key(split.test.tokens)) == n


def test_split_is_seeded():
    vocab = Vocabulary(31, (31,))
    t = ModularTask("sub", 31)
    a, b, c = t.split(vocab, 0.3, 1), t.split(vocab, 0.3, 1), t.split(vocab, 0.3, 2)
    assert torch.equal(a.train.tokens, b.train.tokens)
    assert not torch.equal(a.train.tokens, c.train.tokens)


def test_vocabulary_is_shared_across_moduli():
    vocab = Vocabulary(113, (107, 113))
    x107, _ = ModularTask("add", 107).all_examples(vocab)
    x113, _ = ModularTask("add", 113).all_examples(vocab)
    # same number and operator tokens, different modulus tokens, all inside one vocabulary
    assert x107[:, 2].unique().tolist() == x113[:, 2].unique().tolist() == [vocab.operation_token("add")]
    assert x107[:, 3].unique().item() != x113[:, 3].unique().item()
    assert x107.max() < vocab.d_vocab and x113.max() < vocab.d_vocab
    assert vocab.d_vocab == 113 + len(OPERATIONS) + 2 and vocab.n_classes == 113
    # operator token ids do not depend on which moduli the vocabulary lists
    assert Vocabulary(113, (113,)).operation_token("sub") == vocab.operation_token("sub")
    with pytest.raises(ValueError, match="no token"):
        vocab.modulus_token(101)


@pytest.mark.parametrize("op", OPERATIONS)
def test_labels(op):
    p = 7
    vocab = Vocabulary(p, (p,))
    tokens, labels = ModularTask(op, p).all_examples(vocab)
    for (a, b, _, _), y in zip(tokens.tolist(), labels.tolist()):
        if op == "add":
            assert y == (a + b) % p
        elif op == "sub":
            assert y == (a - b) % p
        elif op == "mul":
            assert y == (a * b) % p
        elif op == "div":
            assert b != 0 and (y * b) % p == a
        else:
            assert y == (a * a + a * b + b * b) % p
    assert len(labels) == (p * (p - 1) if op == "div" else p * p)


def test_positions_and_stack_padding():
    assert POSITIONS["operator"] == 2 and POSITIONS["final"] == 3
    vocab = Vocabulary(11, (11,))
    t = ModularTask("add", 11)
    a, b = t.split(vocab, 0.2, 0).train, t.split(vocab, 0.4, 0).train
    stacked = stack_members([a, b])
    assert stacked.tokens.shape == (2, len(b), 4)
    assert stacked.weight[0].sum().item() == len(a) and stacked.weight[1].sum().item() == len(b)


def test_bad_fraction_is_rejected():
    with pytest.raises(ValueError, match="train_fraction"):
        ModularTask("add", 5).split(Vocabulary(5, (5,)), 0.01, 0)
