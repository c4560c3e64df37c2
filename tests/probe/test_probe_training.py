import pytest
import torch

from lit_mrl.losses import l2_penalty, probe_loss
from lit_mrl.metrics import KEY_NAMES, primary_scores, score_predictions
from lit_mrl.models.heads import seeded_mlp_head
from lit_mrl.probe.budget import choose_threads
from lit_mrl.probe.data import EmbeddingTensors, ProbeData
from lit_mrl.probe.ensemble import (
    ADAM_EPS,
    StackedAdam,
    StackedMLP,
    adam_chunk_elements,
    loss_gradient,
)
from lit_mrl.probe.grid import Grid
from lit_mrl.probe.search import Budget, PruneRule, Scorer, run_search
from lit_mrl.probe.training import EarlyStopping, fit_members


def toy_data(task="multiclass", n=(96, 48, 48), dim=12, outputs=5, seed=0):
    gen = torch.Generator().manual_seed(seed)
    centres = 0.6 * torch.randn(outputs, dim, generator=gen)
    splits = {}
    for stage, size in zip(("train", "val", "test"), n, strict=True):
        classes = torch.randint(0, outputs, (size,), generator=gen)
        emb = centres[classes] + torch.randn(size, dim, generator=gen)
        labels = {
            "multiclass": classes,
            "multilabel": (torch.nn.functional.one_hot(classes, outputs)
                           + (torch.rand(size, outputs, generator=gen) < 0.1)).clamp(max=1).float(),
            "regression": emb[:, :outputs] + 0.3 * torch.randn(size, outputs, generator=gen),
        }[task]  # fmt: skip
        splits[stage] = EmbeddingTensors(emb, labels)
    return ProbeData(splits, task, [f"c{i}" for i in range(outputs)])


@pytest.mark.parametrize("task", ["multiclass", "multilabel", "regression"])
def test_hand_written_gradients_equal_autograd(task):
    data = toy_data(task)
    heads = [seeded_mlp_head(12, 5, [16, 8], 0.0, s) for s in (0, 1, 2)]
    model = StackedMLP(heads, torch.tensor([0.0, 0.5, 0.25]))
    train = data.split("train")
    emb, labels = train.embeddings[:32], train.labels[:32]
    masks = [torch.rand(1, 32, h) for h in (16, 8)]
    outputs = model.forward(emb, masks)
    model.backward(emb, outputs, loss_gradient(task, outputs[-1].clone(), labels))
    expected = []
    for e, head in enumerate(heads):
        linears, keep, hidden = head.linears(), model.keep.flatten()[e].item(), emb
        for i, linear in enumerate(linears[:-1]):
            hidden = linear(hidden).relu() * (masks[i][0] < keep) * (1 / keep)
        loss = probe_loss(linears[-1](hidden), labels, task)
        (loss + l2_penalty([lin.weight for lin in linears], 0.0)).backward()
        expected.append([lin.weight.grad.T for lin in linears] + [lin.bias.grad for lin in linears])
    for layer, grad in enumerate(model.kernel_grads + model.bias_grads):
        for e in range(3):
            torch.testing.assert_close(
                grad[e].reshape(-1), expected[e][layer].reshape(-1), atol=1e-6, rtol=1e-5
            )


def test_stacked_adam_follows_torch_adam_with_keras_l2():
    head = seeded_mlp_head(6, 3, [4], 0.0, 0)
    model = StackedMLP([head, head], torch.zeros(2))
    optimizer = StackedAdam(model, torch.tensor([1e-2, 1e-3]), torch.tensor([1e-3, 0.0]))
    reference = seeded_mlp_head(6, 3, [4], 0.0, 0)
    torch_adam = torch.optim.Adam(reference.parameters(), lr=1e-2, eps=ADAM_EPS)
    emb, labels = torch.randn(10, 6), torch.randint(0, 3, (10,))
    for step, factor in enumerate((0.5, 1.0, 0.25)):
        outputs = model.forward(emb, [])
        model.backward(emb, outputs, loss_gradient("multiclass", outputs[-1], labels))
        optimizer.step(factor)
        for group in torch_adam.param_groups:
            group["lr"] = 1e-2 * factor
        loss = probe_loss(reference(emb), labels, "multiclass")
        loss = loss + l2_penalty([lin.weight for lin in reference.linears()], 1e-3)
        torch_adam.zero_grad()
        loss.backward()
        torch_adam.step()
        for mine, theirs in zip(
            model.kernels, [lin.weight.T for lin in reference.linears()], strict=True
        ):
            torch.testing.assert_close(mine[0], theirs, atol=1e-6, rtol=1e-5, msg=f"step {step}")


def test_stacked_adam_is_the_same_in_any_chunk_size():
    heads = [seeded_mlp_head(6, 3, [16, 8], 0.0, s) for s in (0, 1, 2)]
    emb, labels = torch.randn(10, 6), torch.randint(0, 3, (10,))
    finals = []
    for chunk in (7, 100, None, 10**9):  # None: the device's default
        model = StackedMLP(heads, torch.zeros(3))
        lr, l2 = torch.tensor([1e-2, 1e-3, 3e-3]), torch.tensor([1e-3, 0.0, 1e-4])
        optimizer = StackedAdam(model, lr, l2, chunk_elements=chunk)
        for factor in (0.5, 1.0, 0.25):
            outputs = model.forward(emb, [])
            model.backward(emb, outputs, loss_gradient("multiclass", outputs[-1], labels))
            optimizer.step(factor)
        finals.append(model.flat.clone())
    assert not torch.equal(finals[0], StackedMLP(heads, torch.zeros(3)).flat)  # it trained
    for final in finals[1:]:
        assert torch.equal(final, finals[0])  # bit for bit: elementwise work, any chunking
    assert adam_chunk_elements(torch.device("cpu")) == 2**17  # in cache
    assert adam_chunk_elements(torch.device("cuda")) == 2**26  # few launches per step


def runs_of(data, configs, seeds, budget):
    valid = Scorer(data, "val", "default")
    heads = {s: seeded_mlp_head(12, 5, [16], 0.0, s) for s in set(seeds)}
    model = StackedMLP([heads[s] for s in seeds], torch.tensor([c[0] for c in configs]))
    return fit_members(
        model, data.split("train"), data.task, torch.tensor([c[1] for c in configs], dtype=torch.float64),
        torch.zeros(len(configs)), seeds, budget.steps, budget.warmup_steps, budget.batch_size,
        EarlyStopping(valid.primary_scores, budget.eval_every, budget.patience),
    )  # fmt: skip


def test_every_member_trains_as_it_would_alone():
    """Dropout draws, data order and early stopping depend on the member's own seed only."""
    data, budget = toy_data(), Budget(150, 10, 16, eval_every=10, patience=3)
    configs = [(0.0, 1e-2), (0.5, 1e-2), (0.25, 1e-1), (0.5, 3e-3)]
    together = runs_of(data, configs, [0] * 4, budget)  # the search: one seed
    seeds = runs_of(data, [configs[1]] * 2, [0, 7], budget)  # the selected config's seeds
    for config, seed, run in [
        *zip(configs, [0] * 4, together, strict=True),
        *zip([configs[1]] * 2, [0, 7], seeds, strict=True),
    ]:
        (alone,) = runs_of(data, [config], [seed], budget)
        assert (run.best_step, run.steps) == (alone.best_step, alone.steps)
        assert [h[0] for h in run.history] == [h[0] for h in alone.history]
        assert [h[1] for h in run.history] == pytest.approx([h[1] for h in alone.history], abs=1e-6)
        for mine, theirs in zip(run.weights, alone.weights, strict=True):
            torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=1e-4)
    assert len({run.steps for run in together}) > 1  # members left at different steps


def test_pruned_members_leave_at_a_rung_and_are_marked():
    data = toy_data()
    grid = Grid(hidden_dims=((16,),), dropout=(0.25,), weight_decay=(0.0,), lr=(1e-1, 1e-5, 1e-6))
    budget = Budget(200, 10, 16, eval_every=10, patience=20)
    rule = PruneRule(margin=0.05, keep_fraction=0.3, first=0.25, eta=2.0)
    assert rule.for_budget(budget).rungs == (50, 100)
    search = run_search(data, grid, budget, [0], pruning=rule, replicates=50, progress=print)
    rows = search["configs"]
    assert search["selected"] == 0
    assert not rows[0]["pruned"]
    assert rows[0]["steps"] == 200
    assert all(row["pruned"] and row["steps"] == 50 for row in rows[1:])  # far behind at 50


def test_the_selected_configs_first_seed_is_the_searchs_own_run():
    data = toy_data("regression")
    grid = Grid(hidden_dims=((), (16,)), dropout=(0.5,), weight_decay=(0.0,), lr=(1e-2,))
    budget = Budget(80, 5, 16, eval_every=10, patience=3)
    lines = []
    search = run_search(data, grid, budget, [3, 4], replicates=50, progress=lines.append)
    assert "(1 trained again)" in lines[-1]
    alone = run_search(data, grid, budget, [3], replicates=50, progress=lines.append)
    assert search["test_per_seed"][0] == pytest.approx(alone["test_per_seed"][0], abs=1e-6)


@pytest.mark.parametrize(
    ("task", "metric", "name"),
    [("multilabel", "default", "roc_auc"), ("multiclass", "default", "accuracy"),
     ("multiclass", "mirex_key", "mirex_key"), ("regression", "default", "r2")],
)  # fmt: skip
def test_stacked_primary_scores_equal_each_members_score(task, metric, name):
    gen = torch.Generator().manual_seed(0)
    outputs = 24 if metric == "mirex_key" else 6
    preds = 3 * torch.randn(4, 200, outputs, generator=gen)
    preds[0] = preds[0].round()  # tied scores
    preds[1] = torch.rand(200, outputs, generator=gen)  # already probabilities
    preds[2] *= 20  # saturated sigmoids tie in float32
    labels = {
        "multilabel": (torch.rand(200, outputs, generator=gen) < 0.3).float(),
        "multiclass": torch.randint(0, outputs, (200,), generator=gen),
        "regression": torch.randn(200, outputs, generator=gen),
    }[task]
    names = sorted(KEY_NAMES) if metric == "mirex_key" else None
    if task == "multilabel":
        labels[:, 2] = 0  # an undefined tag is left out
    stacked = primary_scores(task, preds, labels, metric, names)
    for e in range(4):
        expected = score_predictions(task, preds[e], labels, metric, names)[0][name]
        # float64 here, float32 in torchmetrics: R² of saturated members is in the thousands
        assert stacked[e].item() == pytest.approx(expected, rel=1e-6, abs=1e-6)


def test_threads_leave_room_for_a_loaded_machine(monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda _: {0, 1, 2, 3})
    monkeypatch.setattr("os.getloadavg", lambda: (0.2, 0.0, 0.0))
    assert choose_threads() == 4
    monkeypatch.setattr("os.getloadavg", lambda: (2.6, 0.0, 0.0))
    assert choose_threads() == 1
    monkeypatch.setattr("os.getloadavg", lambda: (9.0, 0.0, 0.0))
    assert choose_threads() == 1
