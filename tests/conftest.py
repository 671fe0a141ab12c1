# Optimizers import torch._dynamo lazily on their first step. pytester's in-process
# runs drop modules first imported inside them, and a second import of _dynamo
# fails (it registers a torch library twice), so import it once up front.
import torch._dynamo  # noqa: F401

pytest_plugins = ("pytester",)
