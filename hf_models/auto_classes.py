"""One registration per model family: the Auto classes in this process, and what every save of a head writes.

``register_family`` registers a configuration, its base model and its heads with the Auto classes (in-process,
``AutoModel.from_pretrained(folder)`` after ``import hf_models``) and marks each class with
``register_for_auto_class`` so that ``save_pretrained`` copies the code and writes ``auto_map`` (remote,
``trust_remote_code=True`` on a machine without this package).

transformers writes into ``auto_map`` only the class being saved: a saved ``...ForImageClassification`` lists
``AutoConfig`` and ``AutoModelForImageClassification``, so ``AutoModel.from_pretrained(folder,
trust_remote_code=True)`` and the ``feature-extraction`` pipelines fail on it ("Unrecognized configuration
class"). transformers keeps every entry already in ``config.auto_map`` when it adds the saved class's own
(``custom_object_save``), so a head's ``save_pretrained`` first adds the ``AutoModel`` entry of its family's
registered base model (when the head is or holds that base model, so the weights match) and the saved config lists
both.

The same hook writes the code of the pipeline the config names: ``Pipeline.save_pretrained`` sets
``config.custom_pipelines`` on the model in memory and copies the pipeline's file, but a later
``model.push_to_hub`` or ``Trainer.save_model`` saved only the model and left config.json naming a file that was not
there. A head given a ``pipeline`` (the translation heads: transformers 5 has no ``translation`` task of its own) also
gets the ``custom_pipelines`` entry on every save, so ``pipeline("translation", model=folder,
trust_remote_code=True)`` works on whatever folder or repo any save path wrote.

A folder loaded with ``trust_remote_code=True`` keeps both through later saves: its config carries the ``auto_map``
and ``custom_pipelines`` read from config.json.
"""

import copy
import functools
import importlib
import os

import torch

import transformers
from transformers import AutoConfig, AutoImageProcessor, AutoModel
from transformers.dynamic_module_utils import custom_object_save
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.utils import logging

logger = logging.get_logger(__name__)


def register_family(
    config_class,
    base_model=None,
    heads: dict | None = None,
    image_processor=None,
    pipelines: dict | None = None,
) -> None:
    """Registers one family: ``config_class``; ``base_model`` for ``AutoModel``; ``heads`` as
    ``{"AutoModelForX": head_class}``; the ``image_processor`` class (PIL backend) for ``AutoImageProcessor``; and
    ``pipelines`` as ``{head_class: (task, pipeline_class)}`` for heads whose task needs the package's pipeline."""
    AutoConfig.register(config_class.model_type, config_class)
    config_class.register_for_auto_class()
    if base_model is not None:
        AutoModel.register(config_class, base_model)
        base_model.register_for_auto_class("AutoModel")
    for auto_class_name, head in (heads or {}).items():
        getattr(transformers, auto_class_name).register(config_class, head)
        head.register_for_auto_class(auto_class_name)
        if not hasattr(head.save_pretrained, "pipeline"):  # registering again wraps once
            head.save_pretrained = saving_auto_map_and_pipeline(head.save_pretrained, (pipelines or {}).get(head))
    if image_processor is not None:
        AutoImageProcessor.register(config_class, image_processor_classes={"pil": image_processor})
        image_processor.register_for_auto_class("AutoImageProcessor")


def add_base_model_auto_map(head) -> None:
    """Adds the ``AutoModel`` entry of the family's registered base model to ``head.config.auto_map`` when that base
    model, built from the head's config, finds every one of its weights in the head's (directly or under its
    ``base_model_prefix``), so that ``AutoModel`` on the saved folder loads the head's weights and nothing random.
    The head's module imports the base model's, so the code that save_pretrained copies has it."""
    config = head.config
    try:
        base_class = AutoModel._model_mapping[type(config)]
    except KeyError:
        return
    if getattr(base_class, "_auto_class", None) != "AutoModel":
        return
    if not isinstance(head.base_model, base_class):
        with torch.device("meta"):
            base_keys = base_class(copy.deepcopy(config)).state_dict().keys()
        head_keys, prefix = head.state_dict().keys(), base_class.base_model_prefix
        if not all(key in head_keys or f"{prefix}.{key}" in head_keys for key in base_keys):
            return
    auto_map = dict(getattr(config, "auto_map", None) or {})
    auto_map["AutoModel"] = f"{base_class.__module__.split('.')[-1]}.{base_class.__name__}"
    config.auto_map = auto_map


def saving_auto_map_and_pipeline(save_pretrained, pipeline: tuple[str, type] | None):
    """Wraps a head's ``save_pretrained``: adds the base model's ``auto_map`` entry and ``pipeline``'s
    ``custom_pipelines`` entry to the config, and copies the code of every pipeline the config names."""

    @functools.wraps(save_pretrained)
    def wrapper(self, save_directory: str | os.PathLike, *args, **kwargs):
        if os.path.isfile(save_directory):
            return save_pretrained(self, save_directory, *args, **kwargs)  # transformers reports the error
        add_base_model_auto_map(self)
        if pipeline is not None:
            add_custom_pipeline(self.config, *pipeline)
        if kwargs.get("is_main_process", True):  # the process that writes the files (as transformers decides)
            os.makedirs(save_directory, exist_ok=True)
            write_custom_pipelines(self.config, save_directory)
        return save_pretrained(self, save_directory, *args, **kwargs)

    wrapper.pipeline = pipeline
    return wrapper


def add_custom_pipeline(config, task: str, pipeline_class: type) -> None:
    """Names ``pipeline_class`` for ``task`` in ``config.custom_pipelines`` (as ``Pipeline.save_pretrained`` does),
    unless the config already names a pipeline for that task."""
    custom_pipelines = dict(getattr(config, "custom_pipelines", None) or {})
    if task in custom_pipelines:
        return
    info = PIPELINE_REGISTRY.supported_tasks.get(task, {})
    if info.get("impl") is not pipeline_class:
        raise ValueError(f"{pipeline_class.__name__} is not registered for task {task!r} in PIPELINE_REGISTRY")
    custom_pipelines[task] = {
        "impl": f"{pipeline_class.__module__.rsplit('.', 1)[-1]}.{pipeline_class.__name__}",
        "pt": [auto_class.__name__ for auto_class in info["pt"]],
        "type": info["type"],
    }
    config.custom_pipelines = custom_pipelines


def write_custom_pipelines(config, save_directory: str | os.PathLike) -> None:
    """Copies into ``save_directory`` the module of every pipeline in ``config.custom_pipelines`` that is one of this
    package's modules; warns about one that is neither this package's nor already in the folder."""
    for task, info in (getattr(config, "custom_pipelines", None) or {}).items():
        module_name, _, class_name = info["impl"].rpartition(".")
        try:
            module = importlib.import_module(f"{__package__}.{module_name}")
        except ImportError:
            if not os.path.isfile(os.path.join(save_directory, f"{module_name}.py")):
                logger.warning(
                    f"config.custom_pipelines[{task!r}] names {info['impl']}, which is not a module of {__package__}: "
                    f"copy {module_name}.py into {save_directory} yourself, or pipeline({task!r}, model=...) fails there"
                )
            continue
        custom_object_save(getattr(module, class_name), save_directory)
