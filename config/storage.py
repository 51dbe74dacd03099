"""Static files as production serves them."""

from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticFilesStorage(CompressedManifestStaticFilesStorage):
    """Hashed, compressed files, with the arena page's ES module imports (`./battle_state.js`)
    rewritten to the hashed names too: a browser never pairs a new module with an old one it has
    cached after a deploy."""

    support_js_module_import_aggregation = True
