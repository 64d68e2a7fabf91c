#!/usr/bin/env bash
# Pre-release only: regenerate alembic/versions/0001_unified_model.py from hub/models.py.
set -euo pipefail
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
rm -f alembic/versions/0001_unified_model.py
.venv/bin/python - "$tmp" <<'PY'
import sys
from alembic import command
from hub.db import alembic_config
command.revision(alembic_config(f"sqlite:///{sys.argv[1]}/gen.db"), message="unified model", autogenerate=True, rev_id="0001")
PY
f=alembic/versions/0001_unified_model.py
sed -i 's/astext_type=Text()/astext_type=sa.Text()/; /### commands auto generated/d; /### end Alembic commands/d; s/^Create Date: .*/Create Date: 2026-11-24/' "$f"
rm -rf "$tmp"
echo "regenerated $f"
