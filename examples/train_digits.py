"""Train a small CNN on scikit-learn's digits with every convolution on OpenCL (clconv), beside plain PyTorch.

    python examples/train_digits.py                     # clconv and torch.nn.Conv2d side by side
    python examples/train_digits.py --world-size 2      # DistributedDataParallel, two local processes
    python examples/train_digits.py --world-size 2 --devices 0:0,1:0   # one OpenCL device per rank

The implementation lives in clconv/train_demo.py so that ``clconv train-demo`` runs the same code.
"""

import sys

from clconv.train_demo import main

if __name__ == "__main__":
    sys.exit(main())
