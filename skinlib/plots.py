"""Figures used across notebooks. Each function draws on a given or new axes and returns the figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import MaxNLocator


def _axes(ax, figsize):
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
    return ax.figure, ax


def bar_counts(counts: pd.Series, title: str = "", ax=None, horizontal: bool = False, log: bool = False):
    """Bars with the count written on each."""
    fig, ax = _axes(ax, (7, 3.5) if not horizontal else (7, 0.3 * len(counts) + 1))
    labels = [str(i) for i in counts.index]
    bars = (ax.barh if horizontal else ax.bar)(labels, counts.to_numpy(), color=sns.color_palette("deep")[0])
    ax.bar_label(bars, fmt="%d", padding=2, fontsize=9)
    if log:
        (ax.set_xscale if horizontal else ax.set_yscale)("log")
    if horizontal:
        ax.invert_yaxis()
    ax.set_title(title)
    return fig


def _image_rows(rows: dict[str, list[tuple[np.ndarray, str | None]]], title: str, cell: float, height: float,
                pad: float, label_size: int):
    """One row per key (its label on the left), images across without axes, each with an optional caption."""
    cols = max((len(v) for v in rows.values()), default=1)
    fig, axes = plt.subplots(max(len(rows), 1), cols, figsize=(cell * cols, cell * height * max(len(rows), 1) + pad),
                             squeeze=False)
    for r, (label, items) in enumerate(rows.items()):
        for c in range(cols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
            if c < len(items):
                image, caption = items[c]
                ax.imshow(image)
                if caption is not None:
                    ax.set_title(caption, fontsize=7)
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=label_size)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def image_grid(images: dict[str, np.ndarray], title: str = "", cell: float = 1.6):
    """One row per key (its label on the left), images across."""
    rows = {label: [(image, None) for image in imgs] for label, imgs in images.items()}
    return _image_rows(rows, title, cell, height=0.8, pad=0.4, label_size=10)


def heatmap(table: pd.DataFrame, title: str = "", fmt: str = "d", ax=None, cmap: str = "Blues"):
    """Annotated heatmap of a small table (counts per class and split, confusion matrices)."""
    fig, ax = _axes(ax, (0.9 * table.shape[1] + 2.5, 0.45 * table.shape[0] + 1))
    sns.heatmap(table, annot=True, fmt=fmt, cmap=cmap, cbar=False, ax=ax, linewidths=0.5)
    ax.tick_params(axis="y", rotation=0)
    ax.set_title(title)
    ax.set_ylabel(table.index.name or "")
    ax.set_xlabel(table.columns.name or "")
    return fig


def not_available(ax, title: str = ""):
    """An empty panel saying "not available in this dataset" (a column the dataset does not have)."""
    from .eda import NOT_AVAILABLE

    ax.text(0.5, 0.5, NOT_AVAILABLE, ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title)
    return ax.figure


def metadata_overview(catalog: pd.DataFrame, order: list[str]):
    """Age per class (box plot), sex per class (shares) and localisation counts, side by side; a panel says
    "not available in this dataset" when the catalog has no such values (e.g. one folder per class)."""
    from .eda import available

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2), gridspec_kw={"width_ratios": [1.1, 1, 1.2]})
    known = catalog[catalog["dx"] != ""]
    if available(known, "age"):
        sns.boxplot(data=known, x="dx", y="age", order=order, ax=axes[0], color="#9ecae1")
        axes[0].set_title("age by class")
    else:
        not_available(axes[0], "age by class")
    if available(known, "sex"):
        sex = pd.crosstab(known["dx"], known["sex"], normalize="index").reindex(order)
        sex.plot.bar(stacked=True, ax=axes[1], width=0.8, color=sns.color_palette("Set2"))
        axes[1].set_title("sex by class (share)")
        axes[1].legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, fontsize=8, frameon=False)  # not on the bars
        axes[1].tick_params(axis="x", rotation=0)
    else:
        not_available(axes[1], "sex by class (share)")
    if available(catalog, "localization"):
        bar_counts(catalog["localization"].value_counts(), "images by localisation", ax=axes[2], horizontal=True)
    else:
        not_available(axes[2], "images by localisation")
    fig.tight_layout()
    return fig


def rate_bars(table: pd.DataFrame, column: str, title: str, ax=None, horizontal: bool = False):
    """Bars of a rate column, each labelled with its rate and the number of images behind it ("not available in
    this dataset" for an empty table).

    Args:
        table: one row per group, with `column` and ``images``.
        column: the rate to draw.
        title: the axes' title.
        ax: draw into these axes (default: a new figure).
        horizontal: one bar per line, for many or long group names (body sites) whose labels would overlap.
    """
    fig, ax = _axes(ax, (8, 3.5))
    if table.empty:
        return not_available(ax, title)
    labels = [str(i) for i in table.index]
    color = sns.color_palette("deep")[3]
    top = min(1.0, table[column].max() * 1.35 + 0.02)
    if horizontal:
        bars = ax.barh(labels, table[column].to_numpy(), color=color)
        ax.bar_label(bars, labels=[f" {r:.2f} (n={n})" for r, n in zip(table[column], table["images"])], fontsize=8)
        ax.set_xlim(0, min(1.0, table[column].max() * 1.6 + 0.05))
        ax.invert_yaxis()
        ax.tick_params(axis="y", labelsize=9)
    else:
        bars = ax.bar(labels, table[column].to_numpy(), color=color)
        ax.bar_label(bars, labels=[f"{r:.2f}\nn={n}" for r, n in zip(table[column], table["images"])], fontsize=8)
        ax.set_ylim(0, top)
        ax.tick_params(axis="x", rotation=30)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
    ax.set_title(title)
    return fig


def confusion_pair(counts: pd.DataFrame, normalized: pd.DataFrame, title: str = ""):
    """Confusion matrix as counts and row-normalised (recall on the diagonal), side by side."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.6))
    heatmap(counts, f"{title} counts".strip(), ax=axes[0])
    heatmap(normalized.round(2), f"{title} row-normalised".strip(), fmt=".2f", ax=axes[1], cmap="Greens")
    fig.tight_layout()
    return fig


def correct_per_class(counts: pd.DataFrame, title: str = "", ax=None):
    """Per true class, the test images and how many of them were predicted correctly, as paired bars (study C's
    figure), from a confusion matrix of counts (rows: true class)."""
    fig, ax = _axes(ax, (8.5, 3.5))
    total = counts.sum(axis=1).to_numpy()
    correct = np.diag(counts.to_numpy())
    x, width = np.arange(len(counts)), 0.4
    palette = sns.color_palette("deep")
    for offset, values, label, colour in ((-width / 2, total, "images", palette[7]),
                                          (width / 2, correct, "predicted correctly", palette[2])):
        bars = ax.bar(x + offset, values, width, label=label, color=colour)
        ax.bar_label(bars, fmt="%d", padding=2, fontsize=8)
    ax.set_xticks(x, [str(c) for c in counts.index])
    ax.set_ylabel("test images")
    ax.set_ylim(0, max(1, total.max()) * 1.15)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False, fontsize=9)   # beside: it covers no bar
    ax.set_title(title)
    fig.tight_layout()
    return fig


def training_curves(history: pd.DataFrame, monitor: str = "val_balanced_accuracy", best_epoch: int | None = None,
                    title: str = ""):
    """Loss (train and val) and accuracy / the monitored metric per epoch; `title` (e.g. the model) above both."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.6))
    dots = {"marker": "o", "ms": 3}                  # a run of one epoch still shows its point
    axes[0].plot(history["epoch"], history["train_loss"], label="train", **dots)
    axes[0].plot(history["epoch"], history["val_loss"], label="val", **dots)
    axes[0].set_title("loss")
    axes[1].plot(history["epoch"], history["train_accuracy"], label="train accuracy", **dots)
    axes[1].plot(history["epoch"], history["val_accuracy"], label="val accuracy", **dots)
    axes[1].set_title("accuracy")
    if monitor in history and monitor != "val_accuracy":
        axes[1].plot(history["epoch"], history[monitor], label=monitor.replace("_", " "), **dots)
        axes[1].set_title(f"accuracy and {monitor.replace('_', ' ')}")
    if title:
        fig.suptitle(title, fontweight="bold")
    for ax in axes:
        if best_epoch:
            ax.axvline(best_epoch, color="grey", ls="--", lw=1, label="best epoch (kept)")
        ax.set_xlabel("epoch")
        ax.set_xlim(0.5, max(int(history["epoch"].max()) if len(history) else 1, 1) + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def confusions_side_by_side(tables: dict[str, pd.DataFrame], fmt: str = ".2f"):
    """Several confusion matrices (e.g. the general model and the mix-model) side by side, one title each."""
    fig, axes = plt.subplots(1, len(tables), figsize=(6.3 * len(tables), 4.6), squeeze=False)
    for ax, (title, table) in zip(axes[0], tables.items()):
        heatmap(table.round(2) if fmt != "d" else table, title, fmt=fmt, ax=ax, cmap="Greens" if fmt != "d" else "Blues")
    fig.tight_layout()
    return fig


def cam_rows(rows: dict[str, list[tuple[np.ndarray, str]]], title: str = "", cell: float = 2.5):
    """Grad-CAM overlays: one row per key (its label on the left), each image with its own caption."""
    return _image_rows(rows, title, cell, height=1.05, pad=0.5, label_size=9)


def roc_curves(curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str = "ROC (test)", ax=None):
    """ROC curve of every model on one axes; `curves` maps a label to (y_true, p_positive). AUC in the legend."""
    from sklearn.metrics import roc_auc_score, roc_curve

    fig, ax = _axes(ax, (5.5, 5))
    for label, (y, p) in curves.items():
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, label=f"{label} (AUC {roc_auc_score(y, p):.2f})")
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1)
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title=title, xlim=(0, 1), ylim=(0, 1.01))
    _legend_below(ax)
    return fig


def _legend_below(ax) -> None:
    """The legend under the axes, where it covers no curve (one entry a line)."""
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(0, -0.13), frameon=False)


def pr_curves(curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str = "precision-recall (test)", ax=None):
    """Precision-recall curve of every model on one axes, with the positive rate as the chance line."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    fig, ax = _axes(ax, (5.5, 5))
    rate = None
    for label, (y, p) in curves.items():
        precision, recall, _ = precision_recall_curve(y, p)
        ax.plot(recall, precision, label=f"{label} (AP {average_precision_score(y, p):.2f})")
        rate = float(np.mean(y))
    if rate is not None:
        ax.axhline(rate, color="grey", ls="--", lw=1, label=f"chance ({rate:.2f})")
    ax.set(xlabel="recall (sensitivity)", ylabel="precision", title=title, xlim=(0, 1), ylim=(0, 1.01))
    _legend_below(ax)
    return fig
