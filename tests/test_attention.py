"""Attention by segments of similar length, its cut points, the CPU attention-with-dropout path,
and the uniform-mask dropout."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from nlu.model.attention import attend
from nlu.model.dropout import Dropout, dropout, keep_mask
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
    padding = Padding.packed(mask, segment_cost=0)
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
    assert len(Padding.packed(mask, segment_cost=None).segments) == 1


def test_a_batch_of_only_padding_is_refused():
    with pytest.raises(ValueError, match="every sequence of the batch is empty"):
        Padding.packed(torch.zeros(2, 3), segment_cost=0)


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
    keep = 1 - 6554 / 65536  # p = 0.1 on a 16-bit grid: round(0.1 · 2¹⁶) = 6554 of 65,536 levels dropped
    assert abs(share - keep) < 4 * math.sqrt(keep * (1 - keep) / x.numel())  # four standard deviations
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / 0.9))
    y.sum().backward()
    torch.testing.assert_close(x.grad, y.detach())  # the same mask and scale going back


@pytest.mark.parametrize("size", [1, 3, 4, 5, 4097])
def test_dropout_masks_of_any_size_are_drawn_four_per_draw(size):
    """Sizes that are not a multiple of four use part of the last 64-bit draw."""
    torch.manual_seed(1)
    y = dropout(torch.ones(size, 1), 0.5, training=True)
    assert y.shape == (size, 1) and set(y.flatten().tolist()) <= {0.0, 2.0}


def test_bf16_dropout_keeps_the_expectation():
    """bf16 stores 1/0.9 as 1.109375, so bf16 dropout keeps 1/1.109375 of the elements (drops 9.86%):
    the mean is the input's. Keeping 90% at that scale would shrink it by 0.16%."""
    torch.manual_seed(2)
    x = torch.ones(4_000_000, dtype=torch.bfloat16)
    y = dropout(x, 0.1, training=True)
    assert set(y.unique().tolist()) == {0.0, 1.109375}
    keep = 1 - 6461 / 65536  # round((1 - 1/1.109375) · 2¹⁶) = 6461 levels dropped
    share = (y != 0).double().mean().item()
    assert abs(share - keep) < 4 * math.sqrt(keep * (1 - keep) / x.numel())
    assert abs(keep * 1.109375 - 1) < 1e-5
    assert abs(y.double().mean().item() - 1) < 4 * 1.109375 * math.sqrt(keep * (1 - keep) / x.numel())


@pytest.mark.parametrize("p", [0.01, 0.25, 0.5, 0.9])
def test_keep_mask_drops_p_of_the_elements(p):
    torch.manual_seed(3)
    keep = keep_mask(torch.Size([1 << 20]), p, torch.float32, torch.device("cpu"))
    dropped = round(p * 65536) / 65536
    assert abs(dropped - p) <= 2 ** -17
    torch.testing.assert_close(keep[keep != 0], torch.full_like(keep[keep != 0], 1 / (1 - p)))
    share = (keep == 0).double().mean().item()
    assert abs(share - dropped) < 4 * math.sqrt(dropped * (1 - dropped) / keep.numel())


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


@pytest.mark.parametrize("dropout_p", [0.0, 1e-12])
def test_bf16_attention_on_cpu_stays_within_bf16_rounding_of_fp32(dropout_p):
    """bf16 on the CPU takes the direct path (not SDPA); its output and gradients must match fp32
    SDPA to bf16's precision (8 bits: relative errors of a few 1e-3)."""
    generator = torch.Generator().manual_seed(4)
    query, key, value = (torch.randn(2, 3, 7, 8, generator=generator) for _ in range(3))
    key_mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3], dtype=torch.bool)[:, None, None, :]
    low = [t.bfloat16().requires_grad_() for t in (query, key, value)]
    high = [t.clone().requires_grad_() for t in (query, key, value)]
    ours = attend(*low, key_mask, dropout_p=dropout_p)
    reference = F.scaled_dot_product_attention(*high, attn_mask=key_mask)
    assert ours.dtype == torch.bfloat16
    torch.testing.assert_close(ours.float(), reference, atol=2e-2, rtol=2e-2)
    ours.float().pow(2).sum().backward()
    reference.pow(2).sum().backward()
    for mine, theirs in zip(low, high):
        relative = (mine.grad.float() - theirs.grad).norm() / theirs.grad.norm()
        assert relative < 1e-2
