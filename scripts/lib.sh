# Shared by scripts/dev and scripts/test: the project-local virtualenv with
# the pinned emulator and linters, and an emulator on loopback that is
# stopped when the calling script exits.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# ensure_venv [DIR REQUIREMENTS]: a virtualenv holding exactly the pinned
# requirements, rebuilt only when they change. Default: the emulator and
# linters in .venv.
ensure_venv() {
  local venv="${1:-$VENV}" requirements="${2:-$ROOT/infra/requirements.txt}"
  local stamp="$venv/.requirements"
  if [ -f "$stamp" ] && cmp -s "$stamp" "$requirements"; then
    return
  fi
  say "installing ${requirements#"$ROOT/"} into ${venv#"$ROOT/"}"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$stamp"
}

# ensure_kotlin: kotlinc (npm's kotlin-compiler, in .tools/) and JNA
# (Debian's libjna-java) for compiling and running the Kotlin bindings;
# installed when missing. Sets KOTLINC and JNA_JAR.
ensure_kotlin() {
  local tools="$ROOT/.tools"
  KOTLINC="$tools/node_modules/kotlin-compiler/bin/kotlinc"
  JNA_JAR=/usr/share/java/jna.jar
  if ! command -v java >/dev/null || [ ! -f "$JNA_JAR" ]; then
    say "installing a JDK and JNA (Debian: default-jdk-headless, libjna-java)"
    apt-get update -qq >/dev/null
    apt-get install -y -qq default-jdk-headless libjna-java >/dev/null
  fi
  if [ ! -x "$KOTLINC" ]; then
    say "installing kotlinc (npm: kotlin-compiler 2.4.20) into .tools/"
    mkdir -p "$tools"
    npm install --silent --prefix "$tools" kotlin-compiler@2.4.20 >/dev/null
  fi
}

# ensure_chromium: Debian's headless-capable Chromium for the console's
# browser test; installed when missing. Sets CHROMIUM.
ensure_chromium() {
  CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
  if [ ! -x "$CHROMIUM" ]; then
    say "installing Chromium (Debian: chromium) for the console's browser test"
    apt-get update -qq >/dev/null
    apt-get install -y -qq chromium >/dev/null
  fi
  export CHROMIUM
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# start_emulator PORT LOGFILE: starts moto on 127.0.0.1:PORT, waits until it
# answers, and sets EMULATOR_PID. The caller's trap stops it. With
# EMULATOR_STATE=FILE in the environment its state is kept in FILE.
start_emulator() {
  local port="$1" log="$2"
  say "starting the AWS emulator (moto) on 127.0.0.1:$port"
  "$VENV/bin/python" "$ROOT/infra/emulator/emulator.py" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
  EMULATOR_PID=$!
  wait_until_answers "http://127.0.0.1:$port/moto-api/data.json" "$EMULATOR_PID" "$log" 20
}

# wait_until_answers URL PID LOGFILE SECONDS: waits until URL answers 2xx;
# fails, showing the log, if process PID exits first or time runs out.
wait_until_answers() {
  local url="$1" pid="$2" log="$3" seconds="$4"
  for _ in $(seq 1 $((seconds * 5))); do
    if curl -fsS -o /dev/null "$url" 2>/dev/null; then
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "the server behind $url exited; its log:" >&2
      cat "$log" >&2
      return 1
    fi
    sleep 0.2
  done
  echo "$url did not answer within $seconds s; the log: $log" >&2
  return 1
}

# Stops the emulator (SIGTERM: one that keeps state saves it first).
stop_emulator() {
  if [ -n "${EMULATOR_PID:-}" ] && kill -0 "$EMULATOR_PID" 2>/dev/null; then
    kill "$EMULATOR_PID" 2>/dev/null || true
    wait "$EMULATOR_PID" 2>/dev/null || true
  fi
}

# start_local_stack NAME LOGFILE: the local stack (target/debug/local-stack,
# built) on free loopback ports against the emulator at AWS_ENDPOINT_URL,
# its resources prefixed NAME; sets STACK_API, STACK_WS and STACK_PID. The caller's
# trap calls stop_local_stack.
start_local_stack() {
  local name="$1" log="$2" port cdn_port ws_port console_port
  port="$(free_port)"
  cdn_port="$(free_port)"
  ws_port="$(free_port)"
  console_port="$(free_port)"
  STACK_API="http://127.0.0.1:$port"
  STACK_WS="ws://127.0.0.1:$ws_port"
  API_PORT="$port" CDN_PORT="$cdn_port" WS_PORT="$ws_port" CONSOLE_PORT="$console_port" STACK_NAME="$name" \
    "$ROOT/target/debug/local-stack" >"$log" 2>&1 &
  STACK_PID=$!
  wait_until_answers "$STACK_API/health" "$STACK_PID" "$log" 30
}

stop_local_stack() {
  if [ -n "${STACK_PID:-}" ] && kill -0 "$STACK_PID" 2>/dev/null; then
    kill "$STACK_PID" 2>/dev/null || true
    wait "$STACK_PID" 2>/dev/null || true
  fi
}

# Dummy credentials: the emulator accepts any, and no real AWS account is used.
export_emulator_env() {
  export AWS_ENDPOINT_URL="http://127.0.0.1:$1"
  export AWS_REGION="${AWS_REGION:-us-east-1}"
  export AWS_DEFAULT_REGION="$AWS_REGION"
  export AWS_ACCESS_KEY_ID="testing"
  export AWS_SECRET_ACCESS_KEY="testing"
  unset AWS_SESSION_TOKEN AWS_PROFILE
}
