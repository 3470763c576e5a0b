#!/usr/bin/env bash
# send-sample.sh [FILE] signs a JSON event the way Stream does and POSTs it to
# the service, printing the HTTP status and the reply's body. It shows with
# standard tools (openssl, curl) what a webhook delivery is: the signature is
# the hex HMAC-SHA256 of the exact body bytes, keyed with the app's secret.
#
# FILE defaults to testdata/samples/message.new-1.json, a real Stream event
# kept in the repository. Environment:
#   STREAM_API_KEY      X-Api-Key to send (default dev-key, as `make run`)
#   STREAM_API_SECRET   secret to sign with (default dev-secret, as `make run`)
#   MODERATOR_URL       endpoint (default http://127.0.0.1:8080/webhooks/stream;
#                       the before-send hook is .../webhooks/stream/before-send)
#   WEBHOOK_ID          X-Webhook-Id (default a new UUID; repeat one to see a
#                       retry deduplicated)
#   WEBHOOK_ATTEMPT     X-Webhook-Attempt (default 1)
#
# send-sample.sh --sign [FILE] prints the signature only and sends nothing.
# The exit status is 0 for a 2xx reply, 1 otherwise.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

sign_only=
if [[ ${1:-} == --sign ]]; then
	sign_only=1
	shift
fi
if (($# > 1)) || [[ ${1:-} == -h || ${1:-} == --help ]]; then
	printf 'usage: %s [--sign] [FILE]\n' "$0" >&2
	exit 2
fi

file=${1:-$root/testdata/samples/message.new-1.json}
[[ -f $file ]] || {
	printf 'send-sample: no such file: %s\n' "$file" >&2
	exit 2
}

key=${STREAM_API_KEY:-dev-key}
secret=${STREAM_API_SECRET:-dev-secret}

# openssl reads the file as bytes: no trailing newline is added or removed.
# Its output is "HMAC-SHA2-256(stdin)= <hex>" or "(stdin)= <hex>" depending on
# the version; the hex is the last field either way.
signature=$(openssl dgst -sha256 -hmac "$secret" <"$file" | awk '{print $NF}')
[[ $signature =~ ^[0-9a-f]{64}$ ]] || {
	printf 'send-sample: unexpected openssl output: %s\n' "$signature" >&2
	exit 1
}
if [[ -n $sign_only ]]; then
	printf '%s\n' "$signature"
	exit 0
fi

url=${MODERATOR_URL:-http://127.0.0.1:8080/webhooks/stream}
id=${WEBHOOK_ID:-}
if [[ -z $id ]]; then
	if [[ -r /proc/sys/kernel/random/uuid ]]; then
		id=$(</proc/sys/kernel/random/uuid)
	else
		id=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
	fi
fi

reply=$(mktemp)
trap 'rm -f "$reply"' EXIT
status=$(curl -sS -o "$reply" -w '%{http_code}' -X POST \
	-H "X-Signature: $signature" \
	-H "X-Api-Key: $key" \
	-H "X-Webhook-Id: $id" \
	-H "X-Webhook-Attempt: ${WEBHOOK_ATTEMPT:-1}" \
	-H 'Content-Type: application/json' \
	--data-binary "@$file" \
	"$url")
printf 'POST %s (%s, X-Webhook-Id %s): HTTP %s\n' "$url" "${file#"$root"/}" "$id" "$status"
cat "$reply"
# Keep the prompt on its own line when the body does not end with a newline.
[[ -z $(tail -c1 "$reply") ]] || echo
[[ $status == 2?? ]]
