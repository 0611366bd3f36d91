"""Readable descriptions of transcoder features: top-activating contexts from held-out text,
the tokens a feature's decoder promotes and suppresses, the tokens that drive it, a short label.

```python
atlas = load_or_build_atlas("zoo:tiny", bridge, tset, tset_dir)   # scanned once, then cached
atlas[1, 42].label                                                 # 'says " Mary"'
atlas.describe([(0, 7), (1, 42)])                                  # {(0, 7): FeatureDescription}
```
"""

from circuits.features.atlas import FeatureAtlas, build_atlas
from circuits.features.cache import load_or_build_atlas
from circuits.features.description import Context, FeatureDescription
from circuits.features.errors import FeatureError

__all__ = [
    "Context",
    "FeatureAtlas",
    "FeatureDescription",
    "FeatureError",
    "build_atlas",
    "load_or_build_atlas",
]
