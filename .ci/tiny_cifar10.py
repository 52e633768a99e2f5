"""Write a tiny CIFAR-10 in the binary layout (cifar-10-batches-bin) for .ci/docker-e2e.

    python3 .ci/tiny_cifar10.py OUT [SAMPLES.npz]

Real images when SAMPLES.npz exists: cifar_small_real_samples.npz of the shared datasets, the
first 100 training and first 20 test images of CIFAR-10, stored losslessly. Otherwise the
synthetic images of tests/fakedata.py (250 / 100), so that a checkout alone is enough.
Either way five data_batch_N.bin and test_batch.bin, records of one label byte and 3072
planar pixel bytes, as ResNet.py reads them. Runs on Python 3.6 with numpy (the kit's image).
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
import fakedata  # noqa: E402


def write_binary(folder, train, test):
    """The official file names; the training images split over five batches, as CIFAR-10's are."""
    os.makedirs(folder, exist_ok=True)
    parts = np.array_split(np.arange(len(train[0])), 5)
    batches = [("data_batch_%d.bin" % (i + 1), train[0][p], train[1][p]) for i, p in enumerate(parts)]
    for name, x, y in batches + [("test_batch.bin", test[0], test[1])]:
        records = np.concatenate([y.astype(np.uint8)[:, None], fakedata.planar(x)], axis=1)
        with open(os.path.join(folder, name), "wb") as f:
            f.write(records.astype(np.uint8).tobytes())


def main(argv):
    if len(argv) not in (2, 3):
        sys.exit("usage: %s OUT [SAMPLES.npz]" % argv[0])
    out = argv[1]
    folder = os.path.join(out, "cifar-10-batches-bin")
    samples = argv[2] if len(argv) == 3 else None
    if samples and os.path.isfile(samples):
        d = np.load(samples)
        train = (d["cifar10_train_first100_x"], d["cifar10_train_first100_y"])
        test = (d["cifar10_test_first20_x"], d["cifar10_test_first20_y"])
        what = "real CIFAR-10 images from %s" % samples
    else:
        train, test = fakedata.images(250, seed=0), fakedata.images(100, seed=1)
        what = "synthetic images of tests/fakedata.py (%s)" % ("%s is absent" % samples if samples else "no real samples")
    write_binary(folder, train, test)
    print("wrote %s: %d train / %d test %s" % (folder, len(train[0]), len(test[0]), what))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
