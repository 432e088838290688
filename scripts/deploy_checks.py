#!/usr/bin/env python3
"""Checks of the deployment files that no off-the-shelf linter makes; scripts/check-deploy.sh
runs them with the PyYAML of its tool environment.

  deploy_checks.py cloud-init FILE SCRIPT [--fix]   #cloud-config first, valid YAML, known
                                                    top-level keys, well-formed write_files
                                                    and runcmd, SCRIPT embedded verbatim
                                                    (--fix rewrites the embedded copy)
  deploy_checks.py compose FILE ENV_EXAMPLE         every ${VAR} documented in ENV_EXAMPLE,
                                                    workers reserve distinct NVIDIA GPUs,
                                                    secrets defined, a coordinator healthcheck
  deploy_checks.py kustomize DIR                    prints the resource files of
                                                    DIR/kustomization.yaml (they must exist);
                                                    no Secret with data; the experiment
                                                    ConfigMap holds YAML with a relative
                                                    run_directory
Exit status 1 with one line per problem on standard error.
"""

import os
import re
import sys

import yaml

# Top-level keys of cloud-init's cloud-config (its module reference), the ones a user-data
# file plausibly uses. A key outside this list is a typo as far as these recipes go.
CLOUD_CONFIG_KEYS = {
    "apt", "bootcmd", "ca_certs", "chpasswd", "disable_root", "disk_setup", "drivers",
    "final_message", "fqdn", "fs_setup", "groups", "growpart", "hostname", "keyboard",
    "locale", "manage_etc_hosts", "merge_how", "mounts", "ntp", "package_reboot_if_required",
    "package_update", "package_upgrade", "packages", "phone_home", "power_state",
    "preserve_hostname", "resize_rootfs", "runcmd", "snap", "ssh_authorized_keys",
    "ssh_keys", "ssh_pwauth", "swap", "timezone", "user", "users", "write_files",
}
WRITE_FILES_KEYS = {"path", "content", "source", "owner", "permissions", "encoding", "append", "defer"}


class Problems:
    def __init__(self):
        self.lines = []

    def add(self, where, message):
        self.lines.append(f"{where}: {message}")

    def finish(self):
        for line in self.lines:
            print(line, file=sys.stderr)
        return 1 if self.lines else 0


def load_yaml(path, problems):
    try:
        with open(path, encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except (OSError, yaml.YAMLError) as error:
        problems.add(path, f"not readable as YAML: {error}")
        return None


# --- cloud-init --------------------------------------------------------------------------

def embedded_script_entry(document, script_name):
    for entry in document.get("write_files") or []:
        if isinstance(entry, dict) and str(entry.get("path", "")).endswith(script_name):
            return entry
    return None


def fix_cloud_init(path, script_text, script_name):
    """Rewrites the content block of the write_files entry whose path ends in script_name."""
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    start = None
    for index, line in enumerate(lines):
        if re.match(r"^\s*- path: .*" + re.escape(script_name) + r"\s*$", line):
            start = index
            break
    if start is None:
        raise SystemExit(f"{path}: no write_files entry for {script_name} to fix")
    content = next(i for i in range(start, len(lines)) if re.match(r"^\s*content: \|\s*$", lines[i]))
    indent = len(lines[content]) - len(lines[content].lstrip()) + 2
    end = content + 1
    while end < len(lines) and (lines[end] == "" or lines[end].startswith(" " * indent)):
        end += 1
    while end > content + 1 and lines[end - 1] == "":  # keep the blank line before the next key
        end -= 1
    block = [(" " * indent + line) if line else "" for line in script_text.rstrip("\n").split("\n")]
    lines[content + 1:end] = block
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines))


def check_cloud_init(path, script, fix=False):
    problems = Problems()
    with open(script, encoding="utf-8") as handle:
        script_text = handle.read()
    script_name = "quorum-setup-worker"
    if fix:
        fix_cloud_init(path, script_text, script_name)
    with open(path, encoding="utf-8") as handle:
        first = handle.readline().rstrip("\n")
    if first != "#cloud-config":
        problems.add(path, f"the first line must be '#cloud-config', not {first!r}")
    document = load_yaml(path, problems)
    if document is None:
        return problems.finish()
    if not isinstance(document, dict):
        problems.add(path, "the top level must be a mapping")
        return problems.finish()
    for key in sorted(set(document) - CLOUD_CONFIG_KEYS):
        problems.add(path, f"unknown top-level key {key!r}")
    for key in ("packages", "write_files", "runcmd"):
        if key not in document:
            problems.add(path, f"missing {key}")
    packages = document.get("packages", [])
    if not isinstance(packages, list) or not all(isinstance(p, (str, list)) for p in packages):
        problems.add(path, "packages must be a list of package names")
    runcmd = document.get("runcmd", [])
    if not isinstance(runcmd, list) or not all(
            isinstance(c, str) or (isinstance(c, list) and all(isinstance(a, str) for a in c)) for c in runcmd):
        problems.add(path, "runcmd must be a list of strings or lists of strings")
    for index, entry in enumerate(document.get("write_files") or []):
        where = f"{path}: write_files[{index}]"
        if not isinstance(entry, dict):
            problems.add(where, "must be a mapping")
            continue
        for key in sorted(set(entry) - WRITE_FILES_KEYS):
            problems.add(where, f"unknown key {key!r}")
        if not str(entry.get("path", "")).startswith("/"):
            problems.add(where, "path must be absolute")
        if not isinstance(entry.get("content", ""), str):
            problems.add(where, "content must be text")
        permissions = entry.get("permissions")
        if permissions is not None and not (isinstance(permissions, str) and re.fullmatch(r"0[0-7]{3,4}", permissions)):
            problems.add(where, f"permissions must be a quoted octal string like \"0644\", not {permissions!r}")
    entry = embedded_script_entry(document, script_name)
    if entry is None:
        problems.add(path, f"no write_files entry for {script_name}")
    elif entry.get("content") != script_text:
        problems.add(path, f"the embedded {script_name} differs from {script}: "
                           f"run scripts/check-deploy.sh --fix")
    else:
        commands = [c if isinstance(c, str) else " ".join(c) for c in runcmd or []]
        if not any(entry["path"] in command for command in commands):
            problems.add(path, f"runcmd never runs {entry['path']}")
    return problems.finish()


# --- compose -----------------------------------------------------------------------------

def check_compose(path, env_example):
    problems = Problems()
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    document = load_yaml(path, problems)
    if document is None:
        return problems.finish()
    documented = set()
    with open(env_example, encoding="utf-8") as handle:
        for line in handle:
            match = re.match(r"^\s*([A-Z_][A-Z0-9_]*)=", line)
            if match:
                documented.add(match.group(1))
    for variable in sorted(set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", text)) - documented):
        problems.add(path, f"${{{variable}}} is not in {env_example}")
    services = document.get("services") or {}
    secrets = set((document.get("secrets") or {}).keys())
    if "coordinator" not in services:
        problems.add(path, "no coordinator service")
    elif "healthcheck" not in services["coordinator"]:
        problems.add(path, "the coordinator has no healthcheck")
    seen_devices = {}
    workers = [name for name in services if name.startswith("worker")]
    if not workers:
        problems.add(path, "no worker service")
    for name, service in services.items():
        for secret in service.get("secrets") or []:
            source = secret if isinstance(secret, str) else secret.get("source")
            if source not in secrets:
                problems.add(path, f"{name}: secret {source!r} is not defined")
        if name not in workers:
            continue
        devices = (((service.get("deploy") or {}).get("resources") or {}).get("reservations") or {}).get("devices") or []
        nvidia = [d for d in devices if d.get("driver") == "nvidia" and "gpu" in (d.get("capabilities") or [])]
        if len(nvidia) != 1:
            problems.add(path, f"{name}: must reserve exactly one NVIDIA GPU device")
            continue
        ids = nvidia[0].get("device_ids") or []
        if len(ids) != 1:
            problems.add(path, f"{name}: must name one device id (count-based requests hand every replica the same GPU)")
            continue
        if ids[0] in seen_devices:
            problems.add(path, f"{name}: device {ids[0]} is also {seen_devices[ids[0]]}'s")
        seen_devices[ids[0]] = name
        command = service.get("command") or []
        if "--name" in command and command[command.index("--name") + 1] != name:
            problems.add(path, f"{name}: its --name should be {name}")
    return problems.finish()


# --- kustomize ---------------------------------------------------------------------------

def check_kustomize(directory):
    problems = Problems()
    kustomization = os.path.join(directory, "kustomization.yaml")
    document = load_yaml(kustomization, problems)
    if document is None:
        return problems.finish()
    if document.get("kind") != "Kustomization":
        problems.add(kustomization, "kind must be Kustomization")
    resources = document.get("resources") or []
    if not resources:
        problems.add(kustomization, "no resources")
    files = []
    for resource in resources:
        path = os.path.join(directory, resource)
        if not os.path.isfile(path):
            problems.add(kustomization, f"resource {resource} does not exist")
            continue
        files.append(path)
        try:
            with open(path, encoding="utf-8") as handle:
                manifests = [m for m in yaml.safe_load_all(handle) if m]
        except yaml.YAMLError as error:
            problems.add(path, f"not readable as YAML: {error}")
            continue
        for manifest in manifests:
            kind = manifest.get("kind")
            name = (manifest.get("metadata") or {}).get("name")
            if kind == "Secret" and (manifest.get("data") or manifest.get("stringData")):
                problems.add(path, f"Secret {name} carries data: keys are created with kubectl, never committed")
            if kind == "ConfigMap" and "experiment.yaml" in (manifest.get("data") or {}):
                try:
                    experiment = yaml.safe_load(manifest["data"]["experiment.yaml"])
                except yaml.YAMLError as error:
                    problems.add(path, f"{name}: experiment.yaml is not YAML: {error}")
                    continue
                if not isinstance(experiment, dict) or "name" not in experiment:
                    problems.add(path, f"{name}: experiment.yaml has no name")
                elif str(experiment.get("run_directory", "runs/")).startswith("/"):
                    problems.add(path, f"{name}: run_directory must be relative (runs/NAME), on the runs volume")
    code = problems.finish()
    if code == 0:
        print("\n".join(files))
    return code


def main(arguments):
    if len(arguments) >= 3 and arguments[0] == "cloud-init":
        return check_cloud_init(arguments[1], arguments[2], fix="--fix" in arguments[3:])
    if len(arguments) == 3 and arguments[0] == "compose":
        return check_compose(arguments[1], arguments[2])
    if len(arguments) == 2 and arguments[0] == "kustomize":
        return check_kustomize(arguments[1])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
