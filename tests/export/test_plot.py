"""plot: a block and its derivative, with the kink convention marked."""

import pytest

from symgrad.cli import main
from symgrad.errors import SymgradLimit

matplotlib = pytest.importorskip("matplotlib")


@pytest.mark.parametrize("name", ["sigmoid", "relu", "leaky_relu", "elu", "softplus", "tanh", "hinge"])
def test_plot_writes_a_png(tmp_path, capsys, name):
    out = tmp_path / f"{name}.png"
    assert main(["plot", name, "-o", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000


def test_kinks_are_marked_with_the_convention():
    from symgrad.export.plot import plot_block

    fig = plot_block("relu")
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any("kink at 0: derivative 0 (convention)" in label for label in labels)
    ys = [line.get_ydata()[0] for line in fig.axes[0].lines if line.get_marker() == "o"]
    assert sorted(ys) == [0.0, 1.0]  # the convention's value and the other side


def test_vector_blocks_are_refused_clearly(capsys):
    assert main(["plot", "softmax"]) == 2
    assert "vector block" in capsys.readouterr().err
    with pytest.raises(SymgradLimit):
        from symgrad.export.plot import plot_block

        plot_block("dense")
