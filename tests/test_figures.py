"""The figures read true: the range-test plots show where the loss diverges without one huge value
flattening the curve, legends stand off the data, the suggestions' colours and markers differ (also to
colour-blind eyes), and accuracy axes span at least ``visualize.ACCURACY_MIN_SPAN`` points."""
import itertools

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb

import visualize
from lr_finder import LRFinderResult, suggest

START, LOWEST = 2.3, 1.1  # the synthetic range test's first and lowest loss


def range_test(losses):
    """An LRFinderResult for a smoothed-loss curve over 1e-5..10 (no raw losses, no skips)."""
    lrs = list(np.geomspace(1e-5, 10, len(losses)))
    suggestions, reason = suggest(lrs, list(losses))
    return LRFinderResult(lrs, list(losses), suggestions, {"skip_start": 0}, lrs, list(losses), reason)


def falls_then_blows_up(blow_up=8.0):
    """Falls from START to LOWEST over 60 points, then climbs to ``blow_up`` over 20."""
    return np.r_[np.linspace(START, LOWEST, 60), np.linspace(LOWEST + 0.1, blow_up, 20)]


def drawn(figure):
    """The figure laid out and drawn, as saving it does; returns its renderer."""
    FigureCanvasAgg(figure).draw()
    return figure.canvas.get_renderer()


def diverging_marks(ax):
    return [line for line in ax.get_lines() if line.get_marker() == visualize.DIVERGING_MARKER]


def assert_legend_off_the_axes(figure):
    renderer = drawn(figure)
    ax = figure.axes[0]
    legend = ax.get_legend()
    assert legend is not None
    assert not legend.get_window_extent(renderer).overlaps(ax.get_window_extent(renderer))


# ------------------------------------------------------------------------------------- range-test plots
def test_the_range_test_plot_marks_where_the_loss_diverges_inside_its_y_range():
    losses = falls_then_blows_up()
    result = range_test(losses)
    ax = visualize.plot_lr_finder(result, chosen_lr=result.suggestions["min_loss"]).axes[0]
    bottom, top = ax.get_ylim()
    # the first point past the minimum that is half-way back up from 1.1 to 2.3
    diverging = 60 + int(np.flatnonzero(losses[60:] > (START + LOWEST) / 2)[0])
    [mark] = diverging_marks(ax)
    assert mark.get_xdata()[0] == result.lrs[diverging]
    assert bottom < losses[diverging] < top and bottom < LOWEST
    assert top >= START + 0.25 * (START - LOWEST)  # the climb past the starting loss is in the frame
    assert top < START + (START - LOWEST)  # not squashed by the blow-up to 8
    assert any(label.startswith("diverging") for label in [t.get_text() for t in ax.get_legend().get_texts()])


def test_a_one_step_blow_up_does_not_flatten_the_curve():
    losses = np.r_[np.linspace(START, LOWEST, 60), np.linspace(1.2, 1.3, 5), [500.0, 900.0]]
    ax = visualize.plot_lr_finder(range_test(losses)).axes[0]
    bottom, top = ax.get_ylim()
    assert (START - LOWEST) / (top - bottom) > 0.45  # the fall fills about half the height or more
    [mark] = diverging_marks(ax)
    assert mark.get_ydata()[0] == top  # the jump past the frame is marked at its edge


def test_a_curve_that_never_climbs_back_has_no_divergence_mark():
    losses = np.r_[np.linspace(START, LOWEST, 60), np.linspace(LOWEST, 1.4, 20)]
    ax = visualize.plot_lr_finder(range_test(losses)).axes[0]
    assert not diverging_marks(ax) and ax.get_ylim()[1] > START


def test_the_range_test_legend_stands_beside_the_axes_and_shares_the_chosen_lrs_entry():
    result = range_test(falls_then_blows_up())
    figure = visualize.plot_lr_finder(result, chosen_lr=result.suggestions["min_loss"])
    assert_legend_off_the_axes(figure)
    labels = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert len(labels) == len(result.suggestions) + 1  # one per suggestion, the chosen LR in min_loss's, the X
    assert [label for label in labels if "chosen max LR" in label] == \
        [f"min_loss: {result.suggestions['min_loss']:.2e} = chosen max LR"]
    other = visualize.plot_lr_finder(result, chosen_lr=0.5)  # a chosen LR that is no suggestion gets its own
    assert "chosen max LR: 0.5" in [t.get_text() for t in other.axes[0].get_legend().get_texts()]


def test_several_range_tests_one_legend_entry_each_below_the_axes_and_each_divergence_in_view():
    curves = []
    for i, (start, lowest) in enumerate(((2.4, 2.2), (2.6, 2.3), (2.4, 2.1), (2.65, 2.35))):
        losses = np.r_[np.linspace(start, lowest, 50), np.linspace(lowest, 4 * lowest, 30)]
        curves.append({"label": f"curve {i}", "lrs": list(np.geomspace(1e-5, 10, 80)), "losses": list(losses),
                       "smooth_f": 0.05, "min_loss": float(np.geomspace(1e-5, 10, 80)[49])})
    figure = visualize.plot_range_tests(curves, chance=np.log(10))
    assert_legend_off_the_axes(figure)
    ax = figure.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert len(labels) == len(curves) + 2  # the curves (their min_loss in the label), chance, the X
    bottom, top = ax.get_ylim()
    marks = diverging_marks(ax)
    assert len(marks) == len(curves) and all(bottom < mark.get_ydata()[0] < top for mark in marks)
    assert bottom < min(c["losses"][49] for c in curves) and top < 4  # the blow-ups to 4x do not set the scale


# --------------------------------------------------------------------------------- colours and markers
PROTANOPIA = np.array([[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216], [-0.003882, -0.048116, 1.051998]])
DEUTERANOPIA = np.array([[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413], [-0.011820, 0.042940, 0.968881]])


def lab(colour, vision=np.eye(3)):
    """CIELAB (D65) of a matplotlib colour as seen with ``vision`` (a Machado et al. 2009 matrix on linear RGB)."""
    rgb = np.asarray(to_rgb(colour))
    linear = np.clip(vision @ np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4), 0, 1)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ linear
    t = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(t > (6 / 29) ** 3, np.cbrt(t), t / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def tell_apart(a, b):
    """Two colours a reader tells apart: hues at least 30 degrees apart (or lightness 25 apart, or one
    grey and one coloured), and a colour difference (CIE76) of at least 15 with protanopia and deuteranopia."""
    (la, *ab_a), (lb, *ab_b) = lab(a), lab(b)
    chroma_a, chroma_b = np.hypot(*ab_a), np.hypot(*ab_b)
    hue = abs(np.degrees(np.arctan2(ab_a[1], ab_a[0]) - np.arctan2(ab_b[1], ab_b[0]))) % 360
    seen = (min(chroma_a, chroma_b) > 20 and min(hue, 360 - hue) >= 30) or abs(la - lb) >= 25 \
        or (min(chroma_a, chroma_b) < 10 < 30 < max(chroma_a, chroma_b))
    return seen and all(np.linalg.norm(lab(a, v) - lab(b, v)) >= 15 for v in (PROTANOPIA, DEUTERANOPIA))


def test_the_colour_check_rejects_the_old_near_identical_reds():
    assert not tell_apart("tab:red", "tab:brown") and not tell_apart("tab:orange", "tab:green")
    assert tell_apart("tab:blue", "tab:orange")


SWEEP = [{"max_lr": lr, "test_acc": acc} for lr, acc in ((0.0123, 41.2), (0.05, 56.0), (0.2, 64.0), (1.6, 49.3))]
SUGGESTIONS = {"steepest": 0.085, "valley": 0.0118, "min_loss": 0.433, "minimum": 0.0433}


def test_the_sweep_draws_each_suggestion_in_its_own_colour_and_marker():
    ax = visualize.plot_sweep(SWEEP, SUGGESTIONS, "min_loss").axes[0]
    lines = {line.get_label().split(":")[0]: line for line in ax.get_lines()}
    drawn_styles = [(lines[name].get_color(), lines[name].get_marker()) for name in SUGGESTIONS]
    data_colour = lines["final test accuracy"].get_color()
    for (colour_a, marker_a), (colour_b, marker_b) in itertools.combinations(drawn_styles, 2):
        assert tell_apart(colour_a, colour_b), (colour_a, colour_b)
        assert marker_a != marker_b
    assert all(tell_apart(colour, data_colour) for colour, _ in drawn_styles)


def test_the_range_test_draws_each_suggestion_in_its_own_colour_and_marker():
    result = range_test(falls_then_blows_up())
    ax = visualize.plot_lr_finder(result).axes[0]
    points = [collection for collection in ax.collections if collection.get_label().split(":")[0] in result.suggestions]
    assert len(points) == 4
    colours = [collection.get_facecolor()[0][:3] for collection in points]
    for a, b in itertools.combinations(colours, 2):
        assert tell_apart(a, b), (a, b)
    assert all(tell_apart(colour, ax.get_lines()[0].get_color()) for colour in colours)
    assert len({collection.get_paths()[0].vertices.tobytes() for collection in points}) == 4  # four marker shapes


def test_the_sweep_legend_stands_beside_the_axes():
    assert_legend_off_the_axes(visualize.plot_sweep(SWEEP, SUGGESTIONS, "min_loss"))


# ------------------------------------------------------------------------------------------ accuracy axes
@pytest.mark.parametrize("accuracies", [(76.39, 75.84), (41.9, 43.8, 44.0), (99.6, 99.9), (0.4, 1.2)])
def test_an_accuracy_axis_spans_at_least_the_minimum_and_holds_the_points(accuracies):
    results = [{"max_lr": 0.1 * (i + 1), "test_acc": acc} for i, acc in enumerate(accuracies)]
    bottom, top = visualize.plot_sweep(results, {}, "min_loss").axes[0].get_ylim()
    assert top - bottom >= visualize.ACCURACY_MIN_SPAN - 1e-9
    assert bottom < min(accuracies) and max(accuracies) < top and 0 <= bottom and top <= 100


def test_a_wide_accuracy_range_keeps_its_own_scale():
    bottom, top = visualize.plot_sweep(SWEEP, SUGGESTIONS, "min_loss").axes[0].get_ylim()
    assert 41.2 - 4 < bottom < 41.2 and 64.0 < top < 64.0 + 4


def test_the_history_accuracy_panel_spans_at_least_the_minimum():
    history = {"train_loss": [1.0, 0.9], "test_loss": [1.1, 1.0], "train_acc": [70.0, 70.5], "test_acc": [69.8, 70.2]}
    bottom, top = visualize.plot_history(history).axes[1].get_ylim()
    assert top - bottom >= visualize.ACCURACY_MIN_SPAN - 1e-9 and bottom < 69.8 and 70.5 < top
