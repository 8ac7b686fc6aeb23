"""Our RecBole models."""
