"""Evaluation reports: per-class accuracy and a confusion-matrix PNG (Pillow only)."""
import numpy as np

from cifar10 import CIFAR10_CLASSES


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


def confusion_png(matrix, names, path, title=""):
    """Write the matrix as a heat map: rows are true classes, columns predictions."""
    from PIL import Image, ImageDraw
    k = len(names)
    cell = max(6, min(48, 640 // k))
    left, top = 110 if k <= 20 else 40, 40
    w, h = left + k * cell + 20, top + k * cell + 60
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    d.text((10, 10), title, fill="black")
    rows = matrix.sum(axis=1, keepdims=True).astype(np.float64)
    frac = matrix / np.maximum(rows, 1)
    for i in range(k):
        for j in range(k):
            shade = int(255 * (1 - frac[i, j]))
            x0, y0 = left + j * cell, top + i * cell
            d.rectangle([x0, y0, x0 + cell - 1, y0 + cell - 1], fill=(shade, shade, 255), outline=(220, 220, 220))
            if k <= 20 and cell >= 30:
                d.text((x0 + 3, y0 + cell // 3), str(matrix[i, j]), fill="black" if frac[i, j] < 0.6 else "white")
        if k <= 20:  # rows "3 cat", columns "3": the same classes in the same order
            label = names[i] if names[i] == str(i) else "%d %s" % (i, names[i])
            d.text((5, top + i * cell + cell // 3), label[:16], fill="black")
            d.text((left + i * cell + cell // 3, top - 12), str(i), fill="black")
    d.text((left, top + k * cell + 8), "predicted class (columns) vs true class (rows)", fill="black")
    img.save(path)
    return path
