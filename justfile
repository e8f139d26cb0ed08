# Veltrix Config: the one entry point for building, running and testing.
# `just` lists the recipes.

set shell := ["bash", "-euo", "pipefail", "-c"]

nats_port := env_var_or_default("VELTRIX_DEV_NATS_PORT", "4222")
redis_port := env_var_or_default("VELTRIX_DEV_REDIS_PORT", "6379")
command_listen := env_var_or_default("VELTRIX_DEV_COMMAND_LISTEN", "127.0.0.1:50051")
query_listen := env_var_or_default("VELTRIX_DEV_QUERY_LISTEN", "127.0.0.1:50052")
console_listen := env_var_or_default("VELTRIX_DEV_CONSOLE_LISTEN", "127.0.0.1:8080")
buf := ".tools/bin/buf"
nats_current := ".tools/venv/bin/nats-server"

default:
    @just --list

# Run everything locally: NATS (JetStream) and Redis (reused if already running on their ports, else started with data under .data/), then both services.
dev: ensure-servers
    #!/usr/bin/env bash
    set -euo pipefail
    mkdir -p .data
    pids=()
    cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
    trap cleanup EXIT INT TERM
    up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
    if up {{nats_port}}; then
        echo "using the NATS server already on 127.0.0.1:{{nats_port}}"
    else
        nats-server -js -a 127.0.0.1 -p {{nats_port}} -sd .data/nats -l .data/nats.log & pids+=($!)
        echo "started nats-server -js on 127.0.0.1:{{nats_port}} (data and log under .data/)"
    fi
    if up {{redis_port}}; then
        echo "using the Redis server already on 127.0.0.1:{{redis_port}}"
    else
        redis-server --port {{redis_port}} --bind 127.0.0.1 --dir .data --logfile redis.log & pids+=($!)
        echo "started redis-server on 127.0.0.1:{{redis_port}} (data and log under .data/)"
    fi
    for port in {{nats_port}} {{redis_port}}; do
        for _ in $(seq 100); do up "$port" && break; sleep 0.1; done
    done
    cargo build -p veltrix-command -p veltrix-query -p veltrixctl -p veltrix-console
    # Development settings: no authentication (on purpose, so said at INFO), and
    # a fixed page-token key (production sets its own, shared by the replicas).
    export VELTRIX_NATS_URL=nats://127.0.0.1:{{nats_port}} VELTRIX_REDIS_URL=redis://127.0.0.1:{{redis_port}}
    export VELTRIX_AUTH_OFF=true VELTRIX_PAGE_TOKEN_KEY=veltrix-dev-page-token-key-not-for-production
    target/debug/veltrix-command --listen {{command_listen}} & pids+=($!)
    target/debug/veltrix-query --listen {{query_listen}} & pids+=($!)
    # The console over plain HTTP on this machine only: cookies without Secure.
    target/debug/veltrix-console --listen {{console_listen}} --command-url http://{{command_listen}} \
        --query-url http://{{query_listen}} --insecure-cookies & pids+=($!)
    for addr in {{command_listen}} {{query_listen}} {{console_listen}}; do
        for _ in $(seq 100); do up "${addr##*:}" && break; sleep 0.1; done
    done
    echo
    echo "veltrix-command on {{command_listen}}, veltrix-query on {{query_listen}}."
    echo "The web console: http://{{console_listen}} (authentication is off: sign in with just your name). Try:"
    echo "  export VELTRIX_COMMAND_URL=http://{{command_listen}} VELTRIX_QUERY_URL=http://{{query_listen}} PATH=\$PWD/target/debug:\$PATH"
    echo "  veltrixctl put payments/prod db/url postgres://db --reason first"
    echo "  veltrixctl get payments/prod db/url -o json"
    echo "  veltrixctl watch payments/prod      # in another terminal"
    echo "  veltrixctl history payments/prod"
    echo "  grpcurl -plaintext {{command_listen}} list"
    echo "  grpcurl -plaintext -d '{\"namespace\":\"payments/prod\",\"key\":\"db/url\",\"value\":\"$(printf postgres://db | base64)\",\"reason\":\"first\"}' {{command_listen}} veltrix.config.v1.ConfigCommand/Put"
    echo "  grpcurl -plaintext -d '{\"namespace\":\"payments/prod\",\"key\":\"db/url\"}' {{query_listen}} veltrix.config.v1.ConfigQuery/Get"
    echo "  grpcurl -plaintext -d '{\"namespace\":\"payments/prod\"}' {{query_listen}} veltrix.config.v1.ConfigQuery/History"
    echo "  grpcurl -plaintext -d '{\"service\":\"veltrix.config.v1.ConfigCommand\"}' {{command_listen}} grpc.health.v1.Health/Check"
    echo "Ctrl-C stops what this recipe started."
    wait -n "${pids[@]}"

# nats-server and redis-server, from Debian packages when missing.
ensure-servers: (debian "nats-server:nats-server redis-server:redis-server redis-sentinel:redis-sentinel")

# prometheus and promtool (alert rules, the dashboard test), from Debian packages when missing.
tools-prometheus: (debian "prometheus:prometheus promtool:prometheus")

# Node.js and npm (the console's web app and its browser test), Chromium (that
# test's browser, never a download), from Debian packages when missing; then
# the web app's pinned packages (package-lock.json) when missing or changed.
console-deps: (debian "node:nodejs npm:npm chromium:chromium")
    #!/usr/bin/env bash
    set -euo pipefail
    cd services/console/web
    if [ ! -f node_modules/.package-lock.json ] || ! cmp -s package-lock.json node_modules/.veltrix-installed-lock; then
        echo "installing the console's web packages (npm ci)"
        npm ci --no-audit --no-fund --loglevel=error
        cp package-lock.json node_modules/.veltrix-installed-lock
    fi

# Rebuild the console's web app into services/console/assets (committed; the binary embeds it).
console-build: console-deps
    cd services/console/web && npm run --silent build

# The committed bundle must be what its sources build to (pinned by package-lock.json).
console-check: console-build
    #!/usr/bin/env bash
    set -euo pipefail
    if [ -n "$(git status --porcelain -- services/console/assets)" ]; then
        git status --short -- services/console/assets >&2
        echo "services/console/assets differs from what services/console/web builds: run 'just console-build' and commit the result" >&2
        exit 1
    fi

# Installs the Debian package of each COMMAND:PACKAGE whose command is missing (as root), or says how.
[private]
debian pairs:
    #!/usr/bin/env bash
    set -euo pipefail
    missing=()
    for pair in {{pairs}}; do
        command -v "${pair%%:*}" >/dev/null || [[ " ${missing[*]} " == *" ${pair#*:} "* ]] || missing+=("${pair#*:}")
    done
    [ ${#missing[@]} -eq 0 ] && exit 0
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        echo "installing ${missing[*]} (Debian packages)"
        apt-get update -qq
        # No init system in containers: keep packages from starting their services.
        policy=/usr/sbin/policy-rc.d
        [ -e "$policy" ] || { printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; trap 'rm -f "$policy"' EXIT; }
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "missing: ${missing[*]}. Install with: sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi

# The tests start their own nats-server and redis-server processes; the NATS
# cluster test uses the pinned nats-server of `tools-nats`.
#
# Run every test.
test: ensure-servers tools-prometheus tools console-deps tools-fonts
    #!/usr/bin/env bash
    set -euo pipefail
    export VELTRIX_NATS_CLUSTER_SERVER="$PWD/{{nats_current}}" VELTRIX_BUF="$PWD/{{buf}}"
    # The read model's conformance suite: the read-side, watch, projection
    # and rebuild tests again on a Redis Cluster (3 masters, 3 replicas), and
    # the Redis crate's own on a master behind Sentinel.
    conformance='package(veltrix-redis) | (package(veltrix-query) & (binary(reads) | binary(watch) | binary(projection) | binary(diff) | binary(lifecycle) | binary(promote) | binary(rollback) | binary(schemas) | (binary(faults) & !test(redis_or_nats_down_then_back))))'
    if cargo nextest --version >/dev/null 2>&1; then
        cargo nextest run --workspace --no-fail-fast
        VELTRIX_TEST_REDIS=cluster cargo nextest run --workspace --no-fail-fast -E "$conformance"
        VELTRIX_TEST_REDIS=sentinel cargo nextest run --no-fail-fast -p veltrix-redis
        # nextest runs no doc tests: the README's Rust example is one.
        cargo test --doc -p veltrix-client
    else
        cargo test --workspace --no-fail-fast
        VELTRIX_TEST_REDIS=cluster cargo test --no-fail-fast -p veltrix-redis
        VELTRIX_TEST_REDIS=cluster cargo test --no-fail-fast -p veltrix-query --test reads --test watch --test projection --test diff --test lifecycle --test promote --test rollback --test schemas
        VELTRIX_TEST_REDIS=sentinel cargo test --no-fail-fast -p veltrix-redis
    fi

# Fuzz targets (property-based, stable Rust), with many more cases than the smoke in `just test`.
fuzz cases="20000":
    PROPTEST_CASES={{cases}} cargo nextest run --workspace --no-fail-fast -E 'test(/fuzz_/)'

# The NATS cluster fault test alone (also part of `just test`).
test-cluster: ensure-servers tools
    VELTRIX_NATS_CLUSTER_SERVER="$PWD/{{nats_current}}" \
        cargo nextest run -p veltrix-query --test cluster --no-capture

# Formatting and lints, as CI checks them; the alert rules and their unit tests.
lint: check-deploy tools tools-prometheus console-check
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    {{buf}} lint
    promtool check rules deploy/prometheus/alerts.yml
    promtool test rules deploy/prometheus/alerts_test.yml

# Check that proto/ stays wire-compatible with main (deployed clients, stored events).
proto-breaking against="main": tools
    {{buf}} breaking --against '.git#branch={{against}}'

# Format the code.
fmt:
    cargo fmt --all

# The pinned tools of .ci/tools-requirements.txt under .tools/ (just, a current nats-server, buf).
tools:
    cargo run --quiet --package xtask -- install-tools

# Check deploy/ without a container engine: YAML/JSON parse, compose schema, manifests.
check-deploy:
    #!/usr/bin/env bash
    set -euo pipefail
    if [ ! -x .tools/deploy-venv/bin/python ]; then
        python3 -m venv .tools/deploy-venv
        .tools/deploy-venv/bin/pip install --quiet -r .ci/deploy-check-requirements.txt
    fi
    mkdir -p .tools/compose-schema
    if ! ls .tools/compose-schema/*.whl >/dev/null 2>&1; then
        .tools/deploy-venv/bin/pip download --quiet --no-deps --require-hashes \
            -r .ci/compose-schema-requirements.txt -d .tools/compose-schema
    fi
    .tools/deploy-venv/bin/python deploy/check.py .tools/compose-schema/*.whl

# etcd (the peer the benchmarks compare with), from Debian packages.
tools-etcd: (debian "etcd:etcd-server")

# DejaVu Sans, the font of the benchmark plots, from Debian's packages.
[private]
tools-fonts:
    #!/usr/bin/env bash
    set -euo pipefail
    font=/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
    [ -f "$font" ] && exit 0
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        echo "installing fonts-dejavu-core (Debian package)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends fonts-dejavu-core >/dev/null
    else
        echo "missing: $font. Install with: sudo apt-get install -y fonts-dejavu-core" >&2
        exit 1
    fi

# Every benchmark, side by side with its baseline; writes docs/BENCHMARKS.md.
bench: ensure-servers tools-etcd tools tools-fonts
    cargo build --release -p veltrix-command -p veltrix-query -p veltrix-bench
    target/release/veltrix-bench

# The same workloads for a few seconds each (checks the harness, asserts no speed).
bench-quick: ensure-servers tools-etcd tools tools-fonts
    cargo build --release -p veltrix-command -p veltrix-query -p veltrix-bench
    target/release/veltrix-bench --quick

# Valgrind hides CPU extensions (SHA-NI), so hashing looks costlier than it is.
#
# Instruction counts of one service under one workload (writes or reads), with callgrind.
bench-profile workload="writes": ensure-servers
    cargo build --release -p veltrix-command -p veltrix-query -p veltrix-bench
    VELTRIX_BENCH_WRAP="valgrind --tool=callgrind --callgrind-out-file=target/bench/callgrind.{{workload}}.out" \
        target/release/veltrix-bench --profile {{workload}}
    callgrind_annotate --inclusive=yes target/bench/callgrind.{{workload}}.out | head -80

# What .ci/run runs: lints, every test, and the quick benchmarks.
ci: lint test bench-quick
