"""Both models can memorise: trained on a few random sequences with random targets (nothing to
generalise from), each ranks every training target first. A model that loses its inputs, its targets or
its gradient on the way cannot."""
import pytest
import torch

from fixtures.tiny import build_tiny_model


def random_batch(n: int = 8, n_items: int = 30, width: int = 50):
    """``n`` histories of 3..8 random items (ids ``1..n_items``, 0 = padding) and a random target each."""
    from recbole.data.interaction import Interaction

    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(3, 9, (n,), generator=g)
    items = torch.randint(1, n_items + 1, (n, width), generator=g) * (torch.arange(width) < lengths.unsqueeze(1))
    return Interaction({"item_id_list": items, "item_length": lengths,
                        "item_id": torch.randint(1, n_items + 1, (n,), generator=g)})


def top1_hits(model, batch) -> float:
    model.eval()
    with torch.no_grad():
        return (model.full_sort_predict(batch).argmax(1) == batch["item_id"]).float().mean().item()


@pytest.mark.parametrize("model_name, extra", [("QBERT4Rec", {"train_stage": "finetune"}), ("QSASRec", {})])
def test_memorises_a_few_sequences(tiny_data, sid_file, in_tmp, one_torch_thread, model_name, extra):
    torch.manual_seed(0)
    model, _ = build_tiny_model(model_name, tiny_data, sid_file, hidden_dropout_prob=0.0, attn_dropout_prob=0.0,
                                **extra)
    batch = random_batch()
    assert top1_hits(model, batch) <= 0.25, "untrained: about chance (1/30)"
    optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(100):
        model.train()
        loss = model.calculate_loss(batch)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert loss.item() < 0.2
    assert top1_hits(model, batch) == 1.0
