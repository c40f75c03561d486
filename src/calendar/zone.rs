//! Finding an exchange's time zone: the host's tzdata first (the system's
//! package manager keeps it current; `$TZDIR` can point elsewhere), then the
//! IANA database built into the binary, so the single static binary also
//! works where `/usr/share/zoneinfo` is missing.
//!
//! jiff already answers from its bundled copy when no zoneinfo folder can
//! be opened at all, but not when one exists without the zone asked for (a
//! slimmed container image, a half-installed tzdata): hence this second
//! lookup, per zone.

use jiff::tz::{TimeZone, TimeZoneDatabase};

/// The zone `name` from `host`, else from the bundled database; on failure,
/// what each lookup said.
pub(super) fn find(name: &str, host: &TimeZoneDatabase) -> Result<TimeZone, String> {
    let host_error = match host.get(name) {
        Ok(tz) => return Ok(tz),
        Err(e) => e,
    };
    match TimeZoneDatabase::bundled().get(name) {
        Ok(tz) => {
            log::warn!(
                "time zone {name} is not in the host's tzdata ({host_error}); using the copy \
                 built into brokerguard, which only a new build updates: install the tzdata package"
            );
            Ok(tz)
        }
        Err(bundled_error) => Err(format!(
            "host tzdata: {host_error}; built-in copy: {bundled_error}"
        )),
    }
}
