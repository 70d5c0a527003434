"""Scenario and suite files: the YAML data users edit, validated into pydantic models.

A *scenario* names an env, its parameters, the episode limit, seeds, the metrics that matter and the success
criterion. A *suite* lists scenarios (episodes and seeds per entry) split into ``train`` and ``test``; test entries
use held-out seeds and may override parameters with held-out ranges; an optional ``validation`` split holds the
rows that periodic evaluation during training selects the best model on (seeds apart from the test split's).
Every validation problem is reported as one
:class:`ScenarioError` naming the file, the field path and what is allowed: that includes what YAML itself lets
through (duplicate keys, non-text keys, bytes that are not UTF-8, absurd nesting) and counts so large that they
would exhaust memory before anything could fail.
"""

from __future__ import annotations

import difflib
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from lepton_sim.envs.registration import LEPTON_ENVS, LeptonEnvSpec
from lepton_sim.errors import ScenarioError

SCENARIO_SUFFIXES = (".yaml", ".yml")
MAX_FILE_BYTES = 1 << 20  # a scenario or suite is a few lines; anything this big is not one
MAX_YAML_DEPTH = 32  # nesting levels; scenario files need about 4
MAX_EPISODES = 100_000  # per suite entry: the seed list and results are held in memory
MAX_EPISODE_STEPS = 1_000_000
MAX_SEED = 1_000_000_000  # seed + episodes stays a 32-bit int (SUMO's --seed)
MAX_ERROR_LINES = 10  # problems listed per file; a list of a million bad items must not flood the terminal
SuiteSplit = Literal["train", "test", "validation"]
SPLITS: tuple[SuiteSplit, ...] = ("train", "test", "validation")


def _no_bool(value: Any) -> Any:
    """YAML reads ``yes``/``true`` as booleans, which pydantic would take as the integer 1."""
    if isinstance(value, bool):
        raise ValueError(f"expected an integer, got the boolean {value!r}")
    return value


Seed = Annotated[int, BeforeValidator(_no_bool), Field(ge=0, le=MAX_SEED)]
EpisodeSteps = Annotated[int, BeforeValidator(_no_bool), Field(gt=0, le=MAX_EPISODE_STEPS)]
Episodes = Annotated[int, BeforeValidator(_no_bool), Field(gt=0, le=MAX_EPISODES)]


class Scenario(BaseModel):
    """One environment configuration. ``params`` are the env's keyword arguments (validated by its schema)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("", description="'<domain>/<name>' for built-ins, the file stem for user files")
    description: str = ""
    env: str = Field(description="Gymnasium id of a lepton-sim env, e.g. lepton/Driving-v0")
    params: dict[str, Any] = Field(default_factory=dict)
    max_episode_steps: EpisodeSteps | None = None
    seed: Seed = Field(0, description="base seed: training envs use seed, seed+1, ...")
    metrics: list[str] = Field(default_factory=list, description="info keys that evaluation reports")
    success: str = Field("is_success", description="info key read at episode end; truthy means success")
    source: str = Field("", description="file the scenario was read from", exclude=True)

    @property
    def spec(self) -> LeptonEnvSpec:
        return LEPTON_ENVS[self.env]

    @property
    def domain(self) -> str:
        return self.spec.domain

    def with_params(self, overrides: Mapping[str, Any]) -> "Scenario":
        """A copy with env params overridden (validated against the env's schema)."""
        if not overrides:
            return self
        merged = {**self.params, **overrides}
        _validate_params(self.spec, merged, f"{self.source or self.name} (with overrides)")
        return self.model_copy(update={"params": merged})


class SuiteEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scenario: str
    episodes: Episodes = Field(10, description=f"episodes (and seeds) to run, at most {MAX_EPISODES}")
    seed: Seed = Field(0, description="episode k uses seed + k")
    label: str | None = Field(None, description="row name in reports; defaults to the scenario name")
    params: dict[str, Any] = Field(default_factory=dict, description="overrides, e.g. held-out ranges")


class Suite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = ""
    description: str = ""
    suite: Literal[True] = True
    train: list[SuiteEntry] = Field(default_factory=list)
    test: list[SuiteEntry] = Field(default_factory=list)
    validation: list[SuiteEntry] = Field(
        default_factory=list, description="rows for periodic evaluation and best-model selection while training"
    )
    source: str = Field("", exclude=True)


class SuiteItem(BaseModel):
    """A suite entry resolved into a validated scenario, with the episodes and seeds to run."""

    label: str
    scenario: Scenario
    episodes: int
    seed: int

    @property
    def seeds(self) -> list[int]:
        return [self.seed + k for k in range(self.episodes)]


# --------------------------------------------------------------------------------------------- locating files


def builtin_root() -> Path:
    """Folder of the scenarios shipped with lepton-sim (the repo's scenarios/ in an editable install)."""
    return Path(str(resources.files("lepton_sim.scenarios")))


def builtin_names() -> list[str]:
    root = builtin_root()
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*") if p.suffix in SCENARIO_SUFFIXES)


def resolve_path(name_or_path: str | Path) -> Path:
    """A built-in name (``driving/obstacle-avoid``) or a path to a user's YAML file -> the file's path."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.suffix in SCENARIO_SUFFIXES or path.is_file():
        if not path.is_file():
            raise ScenarioError(f"scenario file not found: {path}")
        return path
    for suffix in SCENARIO_SUFFIXES:
        candidate = builtin_root() / f"{text}{suffix}"
        if candidate.is_file():
            return candidate
    names = builtin_names()
    close = difflib.get_close_matches(text, names, n=3, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise ScenarioError(
        f"unknown scenario or suite {text!r}.{hint} Built-in: {', '.join(names)}. "
        "Or give a path to your own .yaml file."
    )


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, minus what it lets through silently: a repeated key (it keeps the last one), a key
    that is not text (``1:``, ``yes:``), and nesting deep enough to exhaust Python's stack."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nested more than {MAX_YAML_DEPTH} levels deep", self.peek_event().start_mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                if not isinstance(key, str):
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"key {key!r} is not text; field names are words like env, params",
                        key_node.start_mark,
                    )
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"duplicate key {key!r} (first at line {seen[key] + 1}); each field may appear once",
                        key_node.start_mark,
                    )
                seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


def _yaml_problem(err: yaml.YAMLError, path: Path) -> str:
    """One line: file, line and column when known, and what is wrong."""
    if isinstance(err, yaml.reader.ReaderError):
        char = err.character if isinstance(err.character, int) else ord(err.character)
        return f"{path}: invalid YAML: {err.reason} (character #x{char:04x} at offset {err.position})"
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
    problem = getattr(err, "problem", None) or getattr(err, "context", None) or str(err)
    return f"{where}: invalid YAML: {' '.join(str(problem).split())}"


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ScenarioError(
                f"{path}: file is {size} bytes; a scenario or suite file is at most {MAX_FILE_BYTES} bytes of YAML"
            )
        raw = path.read_bytes()
    except OSError as err:
        raise ScenarioError(f"{path}: cannot read the file: {err.strerror or err}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise ScenarioError(
            f"{path}:{line}: not UTF-8 text (byte 0x{raw[err.start]:02x} at offset {err.start}); "
            "scenario and suite files must be UTF-8 YAML"
        ) from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as err:
        raise ScenarioError(_yaml_problem(err, path)) from None
    except RecursionError:  # pathological input the depth limit did not catch
        raise ScenarioError(f"{path}: invalid YAML: nested too deeply") from None
    if data is None:
        raise ScenarioError(f"{path}: the file is empty; expected a mapping of fields (env, params, ...)")
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: expected a mapping of fields (env, params, ...), got {type(data).__name__}")
    return data


def _name_for(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(builtin_root().resolve()).with_suffix(""))
    except ValueError:
        return path.stem


# --------------------------------------------------------------------------------------------- validation


def _field_path(prefix: str, loc: tuple) -> str:
    """``("test", 0, "episodes")`` -> ``test[0].episodes``, the way the messages of suite entries read."""
    text = prefix
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part != "":
            text += f".{part}" if text else str(part)
    return text


def _format_errors(err: ValidationError, source: str, prefix: str = "", model: type[BaseModel] | None = None) -> str:
    lines = []
    for e in err.errors():
        loc = _field_path(prefix, e["loc"])
        if e["type"] == "extra_forbidden":
            fields = list(_allowed_fields(model, e["loc"][:-1])) if model else []
            unknown = str(e["loc"][-1])
            close = difflib.get_close_matches(unknown, fields, n=1, cutoff=0.75)
            msg = f"unknown field {unknown!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
            msg += f"; allowed: {', '.join(fields)}" if fields else ""
            loc = _field_path(prefix, e["loc"][:-1]) or "(top level)"
        elif e["type"] == "missing":
            msg = "required field is missing"
        else:
            msg = e["msg"]
            if "input" in e and not isinstance(e["input"], (dict, list)):
                shown = repr(e["input"])
                shown = shown if len(shown) <= 60 else shown[:57] + "..."
                if shown not in msg:  # custom validators usually say what they got already
                    msg += f" (got {shown})"
        lines.append(f"{source}: {loc}: {msg}")
    if len(lines) > MAX_ERROR_LINES:
        lines = lines[:MAX_ERROR_LINES] + [f"{source}: ... and {len(lines) - MAX_ERROR_LINES} more problems"]
    return "\n".join(lines)


def _allowed_fields(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names of the (possibly nested) model at ``loc``; best effort for error messages."""
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        else:
            args = getattr(annotation, "__args__", ())
            inner = next((a for a in args if isinstance(a, type) and issubclass(a, BaseModel)), None)
            if inner is None:
                return []
            model = inner
    return [n for n, f in model.model_fields.items() if not f.exclude]


def _check_env_id(env_id: Any, source: str) -> LeptonEnvSpec:
    known = ", ".join(sorted(LEPTON_ENVS))
    if env_id is None:
        raise ScenarioError(f"{source}: env: required field is missing. Known ids: {known}")
    if not isinstance(env_id, str):
        raise ScenarioError(
            f"{source}: env: must be the text of an env id, got {type(env_id).__name__}. Known ids: {known}"
        )
    if env_id not in LEPTON_ENVS:
        close = difflib.get_close_matches(env_id, list(LEPTON_ENVS), n=1)
        hint = f" Did you mean {close[0]}?" if close else ""
        raise ScenarioError(f"{source}: env: unknown env id {env_id!r}.{hint} Known ids: {known}")
    return LEPTON_ENVS[env_id]


def _validate_params(spec: LeptonEnvSpec, params: Any, source: str, prefix: str = "params") -> None:
    if not isinstance(params, Mapping):
        raise ScenarioError(
            f"{source}: {prefix}: must be a mapping of env parameters (name: value), got {type(params).__name__}"
        )
    try:
        spec.params_model(**params)
    except ValidationError as err:
        raise ScenarioError(_format_errors(err, source, prefix, spec.params_model)) from None
    except (TypeError, ValueError) as err:
        raise ScenarioError(f"{source}: {prefix}: {err}") from None


def _excluded_keys(data: Mapping[str, Any], model: type[BaseModel], source: str) -> None:
    """Fields the loader sets itself (``source``) are not for files: report them as unknown, not as a crash."""
    for key in data:
        field = model.model_fields.get(key)
        if field is not None and field.exclude:
            allowed = ", ".join(_allowed_fields(model, ()))
            raise ScenarioError(f"{source}: (top level): unknown field {key!r}; allowed: {allowed}")


def scenario_from_dict(data: Mapping[str, Any], source: str = "<dict>", name: str = "") -> Scenario:
    """Validate a scenario mapping (as read from YAML) including the env's own parameter schema."""
    data = dict(data)
    if data.get("suite"):
        raise ScenarioError(f"{source}: this is a suite, not a scenario; use it with --suite")
    _check_env_id(data.get("env"), source)
    _excluded_keys(data, Scenario, source)
    data.setdefault("name", name)
    problems = []
    try:
        scenario = Scenario(**data, source=source)
    except ValidationError as err:
        problems.append(_format_errors(err, source, "", Scenario))
    params = data.get("params")
    try:  # report parameter problems together with the top-level ones
        _validate_params(LEPTON_ENVS[data["env"]], {} if params is None else params, source)
    except ScenarioError as err:
        problems.append(str(err))
    if problems:
        raise ScenarioError("\n".join(problems))
    return scenario


def load_scenario(name_or_path: str | Path | Scenario, **param_overrides: Any) -> Scenario:
    """Load and validate a scenario by built-in name or path; keyword arguments override env params
    (``max_episode_steps`` overrides the scenario's episode limit)."""
    if isinstance(name_or_path, Scenario):
        scenario = name_or_path
    else:
        path = resolve_path(name_or_path)
        scenario = scenario_from_dict(_read_yaml(path), str(path), _name_for(path))
    limit = param_overrides.pop("max_episode_steps", None)
    if limit is not None:
        if not isinstance(limit, int) or isinstance(limit, bool) or not 0 < limit <= MAX_EPISODE_STEPS:
            raise ScenarioError(f"max_episode_steps must be an integer in [1, {MAX_EPISODE_STEPS}], got {limit!r}")
        scenario = scenario.model_copy(update={"max_episode_steps": limit})
    return scenario.with_params(param_overrides)


def load_suite(name_or_path: str | Path) -> Suite:
    path = resolve_path(name_or_path)
    data = _read_yaml(path)
    if not data.get("suite"):
        raise ScenarioError(
            f"{path}: not a suite (a suite has 'suite: true' and train/test lists); use it with --scenario"
        )
    data.setdefault("name", _name_for(path))
    _excluded_keys(data, Suite, str(path))
    try:
        suite = Suite(**data, source=str(path))
    except ValidationError as err:
        raise ScenarioError(_format_errors(err, str(path), "", Suite)) from None
    if not suite.train and not suite.test:
        raise ScenarioError(
            f"{path}: train, test: a suite needs at least one entry "
            "(e.g. test: [{scenario: driving/lane-keep, episodes: 20, seed: 100000}])"
        )
    for split in SPLITS:  # resolve every entry now, so a bad entry fails before anything runs
        labels: dict[str, int] = {}
        for i, item in enumerate(suite_items(suite, split)):
            if item.label in labels:
                raise ScenarioError(
                    f"{path}: {split}[{i}].label: {item.label!r} is already the label of "
                    f"{split}[{labels[item.label]}]; rows of a report need distinct labels"
                )
            labels[item.label] = i
    return suite


def suite_items(suite: Suite, split: SuiteSplit) -> list[SuiteItem]:
    """Resolve a suite split into validated scenarios with their seeds."""
    items = []
    for i, entry in enumerate(getattr(suite, split)):
        try:
            scenario = load_scenario(entry.scenario)
        except ScenarioError as err:
            raise ScenarioError(f"{suite.source}: {split}[{i}].scenario ({entry.scenario}): {err}") from None
        if entry.params:  # the overrides are the suite file's fields: report them there
            merged = {**scenario.params, **entry.params}
            _validate_params(scenario.spec, merged, suite.source, f"{split}[{i}].params")
            scenario = scenario.model_copy(update={"params": merged})
        items.append(
            SuiteItem(label=entry.label or scenario.name, scenario=scenario, episodes=entry.episodes, seed=entry.seed)
        )
    return items


def is_suite(name_or_path: str | Path) -> bool:
    return bool(_read_yaml(resolve_path(name_or_path)).get("suite"))


def describe(name: str) -> str:
    """One line for ``lepton-sim scenarios``."""
    try:
        data = _read_yaml(resolve_path(name))
    except ScenarioError as err:
        return f"(invalid: {err})"
    return str(data.get("description", "")).strip().splitlines()[0] if data.get("description") else ""
