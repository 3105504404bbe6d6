"""Attention by segments of similar length, its cut points, the CPU attention-with-dropout path,
and the uniform-mask dropout."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from nlu.model.attention import attend
from nlu.model.dropout import Dropout, dropout
from nlu.model.padding import Padding, cut_points


def brute_force_cost(lengths: list[int], cost: int) -> int:
    """The least Σ (batch · longest² + cost) over every way to cut ascending LENGTHS into runs."""
    best = math.inf
    for mask in itertools.product([False, True], repeat=len(lengths) - 1):
        ends = [i + 1 for i, cut in enumerate(mask) if cut] + [len(lengths)]
        starts = [0] + ends[:-1]
        best = min(best, sum((end - start) * lengths[end - 1] ** 2 + cost for start, end in zip(starts, ends)))
    return best


def cost_of(lengths: list[int], ends: list[int], cost: int) -> int:
    starts = [0] + ends[:-1]
    return sum((end - start) * lengths[end - 1] ** 2 + cost for start, end in zip(starts, ends))


@pytest.mark.parametrize("seed", range(20))
def test_cut_points_are_optimal(seed):
    generator = torch.Generator().manual_seed(seed)
    lengths = sorted(torch.randint(1, 40, (int(torch.randint(1, 10, (1,), generator=generator)),),
                                   generator=generator).tolist())
    cost = [0, 50, 400, 5000][seed % 4]
    ends = cut_points(lengths, cost)
    assert ends[-1] == len(lengths) and ends == sorted(set(ends))
    assert all(lengths[end - 1] != lengths[end] for end in ends[:-1])  # never between equal lengths
    assert cost_of(lengths, ends, cost) == brute_force_cost(lengths, cost)


def test_cut_points_by_hand():
    assert cut_points([2, 2, 10], 0) == [2, 3]  # 2·4 + 1·100 < 3·100
    assert cut_points([2, 2, 10], 1000) == [3]  # one segment: 300 + 1000 < 108 + 2000
    assert cut_points([5], 0) == [1]


def test_segments_pack_every_real_token_once_and_keep_positions():
    # lengths 2, 6, 3 and an empty row; row 1 has a hole (a masked token inside it)
    mask = torch.tensor([[1, 1, 0, 0, 0, 0], [1, 1, 0, 1, 1, 1], [1, 1, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0]])
    padding = Padding(mask, segment_cost=0)
    assert [(s.batch, s.length) for s in padding.segments] == [(1, 2), (1, 3), (1, 6)]  # shortest first
    assert padding.segments[0].slots is None and padding.segments[2].key_mask[0, 0, 0].tolist() == [1, 1, 0, 1, 1, 1]
    values = torch.arange(24.0).view(4, 6, 1) + 1
    packed = padding.unpad(values)
    assert packed.flatten().tolist() == [1, 2, 13, 14, 15, 7, 8, 10, 11, 12]  # segment by segment
    assert torch.equal(padding.pad(packed), values * mask[..., None])
    blocks = padding.split(packed)
    for segment, block in zip(padding.segments, blocks):  # each layout holds its tokens at their own positions
        torch.testing.assert_close(segment.unpad(segment.pad(block)), block)
    assert torch.equal(padding.segments[2].pad(blocks[2])[0, :, 0], torch.tensor([7.0, 8, 0, 10, 11, 12]))
    wanted = torch.zeros(4, 6, dtype=torch.bool)
    wanted[1, 4] = wanted[2, 0] = wanted[0, 1] = True
    assert packed[padding.rows(wanted)].flatten().tolist() == [2, 11, 13]  # row-major order of the positions
    assert len(Padding(mask, segment_cost=None).segments) == 1


def test_a_batch_of_only_padding_is_refused():
    with pytest.raises(ValueError, match="every sequence of the batch is empty"):
        Padding(torch.zeros(2, 3), segment_cost=0)


def test_attention_with_dropout_on_cpu_is_sdpa_when_nothing_is_dropped():
    """The CPU dropout path computes what SDPA computes, padded keys masked, gradients included."""
    generator = torch.Generator().manual_seed(0)
    query, key, value = (torch.randn(2, 3, 5, 4, generator=generator, requires_grad=True) for _ in range(3))
    key_mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)[:, None, None, :]
    ours = attend(query, key, value, key_mask, dropout_p=1e-12)  # dropout on, keeps everything
    ours.sum().backward()
    ours_grads = [t.grad.clone() for t in (query, key, value)]
    for t in (query, key, value):
        t.grad = None
    reference = F.scaled_dot_product_attention(query, key, value, attn_mask=key_mask)
    reference.sum().backward()
    torch.testing.assert_close(ours, reference, atol=1e-6, rtol=1e-5)
    for mine, theirs in zip(ours_grads, (query.grad, key.grad, value.grad)):
        torch.testing.assert_close(mine, theirs, atol=1e-6, rtol=1e-5)


def test_attention_dropout_drops_probabilities_not_rows():
    """With p = 0.5 some probabilities vanish, and the kept ones are scaled by 2."""
    torch.manual_seed(1)
    query, key = torch.zeros(1, 1, 4, 2), torch.zeros(1, 1, 4, 2)  # uniform attention: 1/4 everywhere
    value = torch.eye(4)[None, None]
    probabilities = attend(query, key, value, None, dropout_p=0.5)  # value = identity: output = probabilities
    assert set(probabilities.flatten().tolist()) == {0.0, 0.5}


def test_uniform_mask_dropout_keeps_one_minus_p_scaled():
    torch.manual_seed(0)
    x = torch.ones(1_000_000, requires_grad=True)
    y = dropout(x, 0.1, training=True)
    kept = y != 0
    share = kept.float().mean().item()
    assert abs(share - 0.9) < 4 * math.sqrt(0.9 * 0.1 / x.numel())  # four standard deviations
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / 0.9))
    y.sum().backward()
    torch.testing.assert_close(x.grad, y.detach())  # the same mask and scale going back


def test_dropout_is_reproducible_and_off_in_eval():
    x = torch.randn(64, 8)
    torch.manual_seed(3)
    first = dropout(x, 0.3, training=True)
    torch.manual_seed(3)
    assert torch.equal(first, dropout(x, 0.3, training=True))
    layer = Dropout(0.3).eval()
    assert layer(x) is x and dropout(x, 0.0, training=True) is x
    assert torch.count_nonzero(dropout(x, 1.0, training=True)) == 0
    assert dropout(x.bfloat16(), 0.3, training=True).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="between 0 and 1"):
        Dropout(1.5)
