#!/usr/bin/env bash
# Build the wheel, install it into a fresh venv, and use it as a new user would:
# the policy TOML must be inside, and init -> record -> review must round-trip.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$py" -m build --wheel --outdir "$work/dist" . >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
# the distribution is skyplane-consent; the import package and the command stay `consent`
wheel=$(ls "$work"/dist/skyplane_consent-*.whl)
"$py" - "$wheel" <<'PY'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
assert "\nName: skyplane-consent\n" in zipfile.ZipFile(sys.argv[1]).read(meta).decode(), meta
assert "consent/policies/skyplane.toml" in names, "the wheel lacks the policy TOML"
assert "consent/py.typed" in names, "the wheel lacks py.typed"
print(f"wheel ok: {sys.argv[1].rsplit('/', 1)[-1]} ({len(names)} files)")
PY

python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet "$wheel"
consent="$work/venv/bin/consent"
export HOME="$work/home" SKYPLANE_USAGE_STATS_DIR="$work/spool" NO_COLOR=1
export SKYPLANE_USAGE_STATS_ENDPOINT="http://127.0.0.1:9/loki/api/v1/push"
unset SKYPLANE_USAGE_STATS_ENABLED SKYPLANE_USAGE_STATS_POLICY DO_NOT_TRACK
mkdir -p "$HOME"
cd "$work"  # away from the source tree, so only the installed wheel can be imported

"$consent" --help >/dev/null
"$work/venv/bin/pip" show skyplane-consent >/dev/null
"$consent" stats status --json | "$work/venv/bin/python" -c \
  'import json,sys; s=json.load(sys.stdin); assert s["enabled"] is True and s["source"] == "default", s'
"$consent" init --yes >/dev/null
session=$("$consent" record --src aws:us-east-1 --dst gcp:us-central1 --runtime-s 2.5 --gbps 1.5 \
  -- cp s3://acme-private/data gs://other-bucket/x)
"$consent" stats review --json | "$work/venv/bin/python" -c '
import json, sys
session = sys.argv[1]
items = json.load(sys.stdin)
(item,) = [i for i in items if i["session_id"] == session]
assert item["payload"]["source_region"] == "aws:us-east-1", item
assert "acme-private" not in json.dumps(item), "a bucket name reached the spool"
print(f"round trip ok: session {session} is {item['\''state'\'']}")
' "$session"
