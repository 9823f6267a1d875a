import numpy as np
import pytest

from retable.adapters.quantizer import Quantizer, choose_nbits, unpack_codes
from retable.errors import UserError


def test_choose_nbits_keeps_eight_points_per_centroid():
    assert choose_nbits(100_000, 8) == 8
    assert choose_nbits(64, 8) == 3
    assert 2 ** choose_nbits(500, 8) * 8 <= 500


def test_unpack_codes_reads_faiss_bit_packing():
    # codes 5, 2, 7 with 3 bits each, little-endian: 101 | 010 | 111 -> bits 0..8 = 1,0,1,0,1,0,1,1,1
    packed = np.packbits(np.array([[1, 0, 1, 0, 1, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0]], dtype=np.uint8), axis=1, bitorder="little")
    assert unpack_codes(packed, m=3, nbits=3).tolist() == [[5, 2, 7]]


def test_m_must_divide_dimension():
    with pytest.raises(UserError, match="does not divide"):
        Quantizer.train(np.zeros((64, 10), dtype=np.float32), m=3, nbits=2, seed=0)
