"""Evaluation reports: per-class accuracy, and the confusion matrix as a matplotlib heat map.

The figures (this confusion matrix, compare.py's learning curves) are drawn by matplotlib's
Agg backend straight to PNG: no display and no pyplot state, so they draw on a headless
machine or in a Docker image. matplotlib is optional at run time: `figure` raises ImportError
where it is missing, and the callers turn that into a one-line note or error.
"""
import os

import numpy as np

from cifar10 import CIFAR10_CLASSES

DPI = 100
# Classes up to this many get a name on both axes and their count in every cell; CIFAR-100 gets
# a tick every 10 classes and colour only (100 labels or 10,000 numbers are unreadable).
LABELLED_CLASSES = 20


def figure(width_in, height_in, fit=False):
    """An empty matplotlib Figure of width_in x height_in inches at DPI, rendered by Agg. fit: lay
    its axes, labels and colour bars out when it is drawn, so that every label lies inside it.

    Raises ImportError where matplotlib is not installed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width_in, height_in), dpi=DPI, constrained_layout=fit)
    FigureCanvasAgg(fig)  # Agg, chosen here rather than by matplotlib.use(): pyplot is never imported
    return fig


def save_png(fig, path):
    """Write `fig` to `path` as a PNG of exactly its size in pixels (width_in x DPI by height_in x DPI)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fig.savefig(path, format="png", dpi=DPI)
    return path


def class_names(dataset, num_classes):
    if dataset == "cifar10":
        return list(CIFAR10_CLASSES)
    return [str(i) for i in range(num_classes)]


def confusion_matrix(labels, predictions, num_classes):
    """counts[true, predicted]; the counts sum to the number of images."""
    m = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(m, (np.asarray(labels, np.int64), np.asarray(predictions, np.int64)), 1)
    return m


def per_class_table(matrix, names):
    lines = ["%-12s %8s %8s" % ("class", "images", "accuracy")]
    for i, name in enumerate(names):
        n = matrix[i].sum()
        lines.append("%-12s %8d %8s" % (name, n, "%.4f" % (matrix[i, i] / float(n)) if n else "-"))
    total = matrix.sum()
    lines.append("%-12s %8d %8.4f" % ("all", total, np.trace(matrix) / float(max(total, 1))))
    return "\n".join(lines)


def row_shares(matrix):
    """Each count as a share of its row (its true class): the diagonal is the per-class accuracy.
    A class without test images is a row of zeros."""
    rows = matrix.sum(axis=1, keepdims=True).astype(np.float64)
    return matrix / np.maximum(rows, 1)


def confusion_figure(matrix, names, title=""):
    """The confusion matrix as a heat map: rows are true classes, columns predictions, each cell
    shaded by its share of the row so that classes with fewer test images compare fairly; up to
    LABELLED_CLASSES classes each cell also prints its count. Returns the Figure (axes[0] is the map)."""
    k = len(names)
    labelled = k <= LABELLED_CLASSES
    fig = figure(8.0, 7.0, fit=True) if labelled else figure(9.0, 8.0, fit=True)
    ax = fig.add_subplot(1, 1, 1)
    shares = row_shares(matrix)
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(image, ax=ax).set_label("share of the true class's test images")
    if labelled:
        ax.set_xticks(range(k))
        ax.set_yticks(range(k))
        ax.set_xticklabels(names, rotation=45, ha="right", rotation_mode="anchor")
        ax.set_yticklabels(names)
        size = 9 if k <= 10 else 6
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=size,
                        color="white" if shares[i, j] > 0.6 else "black")
    else:
        ticks = range(0, k, 10)
        ax.set_xticks(ticks)
        ax.set_yticks(ticks)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    return fig


def confusion_png(matrix, names, path, title=""):
    """Write confusion_figure(matrix, names, title) to `path` (ImportError without matplotlib)."""
    return save_png(confusion_figure(matrix, names, title), path)
