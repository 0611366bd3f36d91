"""Circuit-discovery baselines run on the same models and tasks as the transcoder circuits:
activation patching of components, edge attribution patching (EAP) and EAP with integrated
gradients (EAP-IG)."""
