"""bench.py's arithmetic: what it times must be the work it counts (its speeds are printed, never asserted)."""
import torch

import bench


def test_the_peak_times_one_product_two_ways_the_convolution_computing_the_same_product():
    a, b = torch.randn(128, 48, dtype=torch.float64), torch.randn(48, 80, dtype=torch.float64)
    image, weight = bench.as_convolution(a, b)
    assert image.shape == (1, 48, 2, 64) and weight.shape == (80, 48, 1, 1)
    product = torch.nn.functional.conv2d(image, weight).reshape(80, 128).T
    assert torch.allclose(product, a @ b)
