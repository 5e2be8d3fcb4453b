# Shared by the benchmark scripts: builds the release binary and makes a work folder with
# CLIENTS generated former clients (clients.csv) and a configuration (winback.toml) whose
# campaign is a survey then a newsletter. Sets root, work and bin; the work folder goes
# when the script exits. Source it after setting CLIENTS.
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
bin="$root/target/release/winback"
python3 "$root/benches/gen_clients.py" "$CLIENTS" > "$work/clients.csv"
cat > "$work/winback.toml" <<TOML
[database]
path = "bench.db"
[smtp]
url = "file://outbox"
from = "Acme <success@acme.example>"
[http]
public_url = "http://127.0.0.1:8080"
[sender]
company = "Acme"
postal_address = "1 Main St"
[templates]
dir = "$root/templates"
[[campaign]]
name = "former-clients"
send_at = "0 10 * * Tue-Thu"
timezone = "America/New_York"
  [[campaign.step]]
  kind = "survey"
  template = "survey"
  subject = "Hi"
  [[campaign.step]]
  kind = "newsletter"
  after_days = 30
  template = "newsletter"
  subject = "News"
TOML
