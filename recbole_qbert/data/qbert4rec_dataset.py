"""The dataset QBERT4Rec trains on: semantic IDs, and one training sequence per user.

RecBole's ``SequentialDataset`` turns each user's history into one training sample per prefix (131k
samples for Amazon Beauty's 22k users), which a masked model does not need: masking several positions
of the whole sequence covers those predictions at once. With ``train_one_sequence_per_user`` (default)
the training split keeps only each user's longest prefix, i.e. the training history as RecBole cuts it
(the last ``MAX_ITEM_LIST_LENGTH`` items and the target; a longer history's earlier targets are not trained
on: 127 of Amazon Beauty's 22,363 users); the validation and test splits, and so RecBole's evaluation, are
untouched.
"""
import numpy as np

from recbole_qbert.data.sid_dataset import SemanticIDDataset


def last_row_per_user(user_ids: np.ndarray) -> np.ndarray:
    """Indices of each user's last row (rows are in time order within a user), in row order."""
    reversed_first = np.unique(user_ids[::-1], return_index=True)[1]
    return np.sort(len(user_ids) - 1 - reversed_first)


class QBERT4RecDataset(SemanticIDDataset):
    def build(self):
        train, valid, test = super().build()
        if self.config["train_one_sequence_per_user"]:
            keep = last_row_per_user(train.inter_feat[self.uid_field].numpy())
            train.inter_feat = train.inter_feat[keep]
        return [train, valid, test]
