# Sourced by .ci/run: real GNU Health for the gnuhealth seeder's tests (issue #11).
#
# * GNU Health 5.0.6 in a virtual environment (pip install, ~40 s once): the
#   comparison test registers patients through its own ORM.
#   -> CANARY_GNUHEALTH_PYTHON, requirement "gnuhealth".
# * GNU Health 4.4.1: its virtual environment and a schema dump of a fresh
#   site, built once the way the shared 5.0.6 dump was (trytond-admin,
#   trytond_import_countries, pg_dump; ~4 min on 2 cores).
#   -> CANARY_GNUHEALTH44_PYTHON, CANARY_GNUHEALTH44_SCHEMA, requirement "gnuhealth44".
# Both live in the cache outside the clone; delete it to rebuild.
gh_cache="${CANARY_CI_CACHE:-$HOME/.cache/canary-ci}"
mkdir -p "$gh_cache"

gh_venv() {  # gh_venv DIR PACKAGE... : a virtual environment with these packages, made once
    if [ ! -x "$1/bin/python" ] || [ ! -f "$1/.complete" ]; then
        rm -rf "$1"
        python3 -m venv "$1"
        "$1/bin/python" -m pip install --quiet "${@:2}"
        touch "$1/.complete"
    fi
}

gh_venv "$gh_cache/gh5" gnuhealth==5.0.6 psycopg2-binary
export CANARY_GNUHEALTH_PYTHON="$gh_cache/gh5/bin/python"
export CANARY_REQUIRE="$CANARY_REQUIRE,gnuhealth"

gh_build_441() {  # the schema of a fresh GNU Health 4.4.1 site, as the 5.0.6 one was made
    local venv="$gh_cache/gh44" work db conf
    gh_venv "$venv" gnuhealth==4.4.1 'proteus<6.1' pillow psycopg2-binary pycountry==20.7.3
    work="$(mktemp -d)"
    db="canary_ci_gh441_$$"
    # host, port and user of the test server, from its SQLAlchemy URL
    read -r pg_host pg_port pg_user < <("$venv/bin/python" -c 'import sys, urllib.parse as u
p = u.urlsplit(sys.argv[1].replace("+psycopg", "")); print(p.hostname or "127.0.0.1", p.port or 5432, p.username or "postgres")' "$CANARY_TEST_POSTGRES_URL")
    conf="$work/trytond.conf"
    printf '[database]\nuri = postgresql://%s@%s:%s/\npath = %s\n' "$pg_user" "$pg_host" "$pg_port" "$work" > "$conf"
    "$venv/bin/python" -c 'import secrets; print(secrets.token_urlsafe(16))' > "$work/pass"
    export PGHOST="$pg_host" PGPORT="$pg_port" PGUSER="$pg_user"
    createdb "$db" &&
        # Two steps: health's help.xml looks up ir.module 'health', which trytond 6.0
        # inserts only after loading the module (one step fails on a new database).
        TRYTONPASSFILE="$work/pass" "$venv/bin/trytond-admin" -c "$conf" -d "$db" --all -m --email admin@example.org &&
        TRYTONPASSFILE="$work/pass" "$venv/bin/trytond-admin" -c "$conf" -d "$db" --all -u health \
            --activate-dependencies --email admin@example.org &&
        "$venv/bin/trytond_import_countries" -c "$conf" -d "$db" &&
        pg_dump --no-owner --no-privileges "$db" > "$work/dump.sql" &&
        mv "$work/dump.sql" "$gh_cache/gnuhealth-4.4.1.sql"
    local status=$?
    dropdb --if-exists "$db" || true
    rm -rf "$work"
    unset PGHOST PGPORT PGUSER
    return $status
}

if [ ! -f "$gh_cache/gnuhealth-4.4.1.sql" ]; then
    if command -v createdb >/dev/null && command -v pg_dump >/dev/null; then
        echo ".ci/run: building the GNU Health 4.4.1 schema once (~4 min) into $gh_cache" >&2
        gh_build_441 >"$gh_cache/gh441-build.log" 2>&1 ||
            echo ".ci/run: GNU Health 4.4.1 build failed (see $gh_cache/gh441-build.log): its tests will skip" >&2
    else
        echo ".ci/run: no createdb/pg_dump: the GNU Health 4.4.1 tests will skip" >&2
    fi
fi
if [ -f "$gh_cache/gnuhealth-4.4.1.sql" ]; then
    export CANARY_GNUHEALTH44_SCHEMA="$gh_cache/gnuhealth-4.4.1.sql"
    export CANARY_GNUHEALTH44_PYTHON="$gh_cache/gh44/bin/python"
    export CANARY_REQUIRE="$CANARY_REQUIRE,gnuhealth44"
fi
