# Shared by the benchmark scripts that send: finds Postfix's smtp-sink and smtp-source and
# starts the sink on 127.0.0.1. Source it after setting WORK_DIR (a scratch folder); call
# stop_sink from the script's exit trap.
#
# Needs smtp-sink and smtp-source from Debian's `postfix` package (`bash .ci/run --deps-only`
# installs it without configuring a mail server) and python3 (to find a free port).

find_postfix_tool() {
    local name="$1" directory
    if command -v "$name" >/dev/null 2>&1; then
        command -v "$name"
        return
    fi
    for directory in /usr/sbin /usr/lib/postfix /usr/lib/postfix/sbin /usr/libexec/postfix; do
        if [ -x "$directory/$name" ]; then
            echo "$directory/$name"
            return
        fi
    done
    echo "$(basename "$0"): $name not found; install Debian's postfix package (bash .ci/run --deps-only)" >&2
    exit 1
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

SINK_PID=""
# Starts smtp-sink on 127.0.0.1:$SINK_PORT and waits (at most 5 s) until it listens.
start_sink() {
    SMTP_SINK="$(find_postfix_tool smtp-sink)"
    SINK_PORT="$(free_port)"
    local user_option=()
    if [ "$(id -u)" -eq 0 ]; then
        user_option=(-u nobody)   # smtp-sink refuses to keep root privileges
    fi
    "$SMTP_SINK" "${user_option[@]}" 127.0.0.1:"$SINK_PORT" 1000 \
        >"$WORK_DIR/sink.log" 2>&1 &
    SINK_PID=$!
    local attempt
    for attempt in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$SINK_PORT") 2>/dev/null; then
            return
        fi
        if ! kill -0 "$SINK_PID" 2>/dev/null; then
            echo "$(basename "$0"): smtp-sink exited:" >&2
            cat "$WORK_DIR/sink.log" >&2
            exit 1
        fi
        sleep 0.05
    done
    echo "$(basename "$0"): smtp-sink did not listen on 127.0.0.1:$SINK_PORT within 5 s" >&2
    exit 1
}

stop_sink() {
    if [ -n "$SINK_PID" ] && kill -0 "$SINK_PID" 2>/dev/null; then
        kill "$SINK_PID" 2>/dev/null || true
        wait "$SINK_PID" 2>/dev/null || true
    fi
}
