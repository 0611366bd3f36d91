"""Scoring component-level circuits against a reference: ranking and set metrics, and
faithfulness at equal size."""
