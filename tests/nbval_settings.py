"""nbval settings, loaded as a pytest plugin from pytest.ini.

stderr (tqdm bars, library warnings) differs from run to run and between SMOKE and real runs, so it is
left out of the comparison of checked cells; stdout and text/plain stay compared.
"""
from nbval.plugin import IPyNbFile

_original_init = IPyNbFile.__init__


def _init_without_stderr(self, *args, **kwargs):
    _original_init(self, *args, **kwargs)
    self.skip_compare = self.skip_compare + ("stderr",)


IPyNbFile.__init__ = _init_without_stderr
