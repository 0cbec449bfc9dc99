//! The idle policy (`exo worker --idle-only`): take work only while the machine's owner does
//! not need it.
//!
//! The host is idle when every rule of the [`IdlePolicy`] holds:
//! - the 1-minute load average (`/proc/loadavg`), less the load of the worker's own running
//!   units, per core, is under `max_load_per_core`;
//! - the machine is on mains power, when `/sys/class/power_supply` says so (a `Mains` supply
//!   online, or no battery discharging); a machine without power-supply information is taken to
//!   be on mains;
//! - the local hour is inside the allowed window, such as `22-07` (from 22:00 to 06:59).
//!
//! The decision is a pure function of [`Readings`], so tests inject readings; [`read_host`]
//! takes them from the system.

use std::{fmt, path::Path};

/// Hours of the day, local time, `[start, end)`; wraps past midnight when `start > end`.
/// `start == end` is the whole day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HourWindow {
    pub start: u8,
    pub end: u8,
}

impl HourWindow {
    /// Parses `22-07` or `9-17` (hours 0 to 24).
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not an hour window such as 22-07");
        let (a, b) = text.trim().split_once('-').ok_or_else(bad)?;
        let hour = |s: &str| -> Result<u8, String> {
            let h: u8 = s.trim().parse().map_err(|_| bad())?;
            if h > 24 { Err(bad()) } else { Ok(h % 24) }
        };
        Ok(Self {
            start: hour(a)?,
            end: hour(b)?,
        })
    }

    pub fn contains(&self, hour: u8) -> bool {
        let hour = hour % 24;
        if self.start == self.end {
            true
        } else if self.start < self.end {
            (self.start..self.end).contains(&hour)
        } else {
            hour >= self.start || hour < self.end
        }
    }
}

impl fmt::Display for HourWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}-{:02}", self.start, self.end)
    }
}

/// When an `--idle-only` worker may take work.
#[derive(Clone, Debug, PartialEq)]
pub struct IdlePolicy {
    /// Highest load average per core, not counting the worker's own units.
    pub max_load_per_core: f64,
    /// Pause while running on battery.
    pub require_mains: bool,
    /// Allowed local hours; `None` is any time.
    pub window: Option<HourWindow>,
}

impl Default for IdlePolicy {
    fn default() -> Self {
        Self {
            max_load_per_core: 0.3,
            require_mains: true,
            window: None,
        }
    }
}

/// What the host looks like now.
#[derive(Clone, Debug, PartialEq)]
pub struct Readings {
    /// 1-minute load average, if known.
    pub load1: Option<f64>,
    pub cores: u32,
    /// Units of this worker running now (each keeps one core busy).
    pub own_units: u32,
    /// `Some(false)` on battery; `None` when the machine does not say.
    pub on_mains: Option<bool>,
    /// Local hour, 0 to 23.
    pub local_hour: u8,
}

/// Why the worker pauses.
#[derive(Clone, Debug, PartialEq)]
pub enum PauseReason {
    Busy { load_per_core: f64, max: f64 },
    OnBattery,
    OutsideWindow { hour: u8, window: HourWindow },
}

impl fmt::Display for PauseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Busy { load_per_core, max } => write!(
                f,
                "the host is busy (load {load_per_core:.2} per core, above {max:.2})"
            ),
            Self::OnBattery => write!(f, "the host runs on battery"),
            Self::OutsideWindow { hour, window } => {
                write!(f, "hour {hour:02} is outside the allowed window {window}")
            }
        }
    }
}

impl IdlePolicy {
    /// `Ok` when the worker may take work, else why not.
    pub fn check(&self, r: &Readings) -> Result<(), PauseReason> {
        if let Some(window) = self.window
            && !window.contains(r.local_hour)
        {
            return Err(PauseReason::OutsideWindow {
                hour: r.local_hour,
                window,
            });
        }
        if self.require_mains && r.on_mains == Some(false) {
            return Err(PauseReason::OnBattery);
        }
        if let Some(load) = r.load1 {
            let others = (load - f64::from(r.own_units)).max(0.0);
            let per_core = others / f64::from(r.cores.max(1));
            if per_core > self.max_load_per_core {
                return Err(PauseReason::Busy {
                    load_per_core: per_core,
                    max: self.max_load_per_core,
                });
            }
        }
        Ok(())
    }
}

/// The 1-minute load average from `/proc/loadavg` text.
pub fn parse_loadavg(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

/// Whether the machine is on mains power, from the `/sys/class/power_supply` directory:
/// `Some(true)` if a `Mains`/`USB` supply is online or no battery is discharging, `Some(false)`
/// if a battery discharges and no mains supply is online, `None` without information.
pub fn read_power(dir: &Path) -> Option<bool> {
    let entries = std::fs::read_dir(dir).ok()?;
    let read = |p: &Path, name: &str| {
        std::fs::read_to_string(p.join(name))
            .ok()
            .map(|s| s.trim().to_string())
    };
    let mut mains_online = None;
    let mut discharging = false;
    let mut any = false;
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(kind) = read(&path, "type") else {
            continue;
        };
        match kind.as_str() {
            "Mains" | "USB" | "USB_C" | "USB_PD" => {
                any = true;
                if read(&path, "online").as_deref() == Some("1") {
                    mains_online = Some(true);
                } else if mains_online.is_none() {
                    mains_online = Some(false);
                }
            }
            "Battery" => {
                any = true;
                if read(&path, "status").as_deref() == Some("Discharging") {
                    discharging = true;
                }
            }
            _ => {}
        }
    }
    if !any {
        return None;
    }
    match mains_online {
        Some(true) => Some(true),
        _ => Some(!discharging),
    }
}

/// The local hour from the system time zone (UTC if it cannot be read).
pub fn local_hour() -> u8 {
    let now = jiff::Zoned::now();
    u8::try_from(now.hour()).unwrap_or(0)
}

/// Readings of this host now.
pub fn read_host(cores: u32, own_units: u32) -> Readings {
    Readings {
        load1: std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|t| parse_loadavg(&t)),
        cores,
        own_units,
        on_mains: read_power(Path::new("/sys/class/power_supply")),
        local_hour: local_hour(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn idle() -> Readings {
        Readings {
            load1: Some(0.1),
            cores: 4,
            own_units: 0,
            on_mains: None,
            local_hour: 23,
        }
    }

    #[test]
    fn windows() {
        let night = HourWindow::parse("22-07").unwrap();
        assert!(night.contains(22) && night.contains(23) && night.contains(0));
        assert!(night.contains(6) && !night.contains(7) && !night.contains(12));
        let day = HourWindow::parse("9-17").unwrap();
        assert!(day.contains(9) && day.contains(16) && !day.contains(17) && !day.contains(3));
        assert!(HourWindow::parse("0-24").unwrap().contains(13));
        assert_eq!(night.to_string(), "22-07");
        for bad in ["", "22", "a-b", "25-3", "-1-3"] {
            assert!(HourWindow::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn policy_decides_from_readings() {
        let policy = IdlePolicy {
            max_load_per_core: 0.5,
            require_mains: true,
            window: Some(HourWindow::parse("22-07").unwrap()),
        };
        assert_eq!(policy.check(&idle()), Ok(()));
        // Busy host.
        let busy = Readings {
            load1: Some(3.0),
            ..idle()
        };
        assert!(matches!(policy.check(&busy), Err(PauseReason::Busy { .. })));
        // The worker's own units do not count against it.
        let own = Readings {
            load1: Some(3.0),
            own_units: 2,
            ..idle()
        };
        assert_eq!(policy.check(&own), Ok(()));
        // Battery, and unknown power (assume mains).
        let battery = Readings {
            on_mains: Some(false),
            ..idle()
        };
        assert_eq!(policy.check(&battery), Err(PauseReason::OnBattery));
        let mains = Readings {
            on_mains: Some(true),
            ..idle()
        };
        assert_eq!(policy.check(&mains), Ok(()));
        let lenient = IdlePolicy {
            require_mains: false,
            ..policy.clone()
        };
        assert_eq!(lenient.check(&battery), Ok(()));
        // Outside the window.
        let noon = Readings {
            local_hour: 12,
            ..idle()
        };
        assert!(matches!(
            policy.check(&noon),
            Err(PauseReason::OutsideWindow { hour: 12, .. })
        ));
        // No load reading: only the other rules apply.
        let unknown = Readings {
            load1: None,
            ..idle()
        };
        assert_eq!(policy.check(&unknown), Ok(()));
        assert!(!PauseReason::OnBattery.to_string().is_empty());
    }

    #[test]
    fn reads_loadavg_and_power_supplies() {
        assert_eq!(parse_loadavg("0.52 0.40 0.30 1/123 4567\n"), Some(0.52));
        assert_eq!(parse_loadavg(""), None);
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_power(dir.path()), None);
        assert_eq!(read_power(&dir.path().join("absent")), None);
        let supply = |name: &str, files: &[(&str, &str)]| {
            let p = dir.path().join(name);
            std::fs::create_dir_all(&p).unwrap();
            for (f, v) in files {
                std::fs::write(p.join(f), format!("{v}\n")).unwrap();
            }
        };
        supply("BAT0", &[("type", "Battery"), ("status", "Discharging")]);
        assert_eq!(read_power(dir.path()), Some(false));
        supply("AC", &[("type", "Mains"), ("online", "0")]);
        assert_eq!(read_power(dir.path()), Some(false));
        supply("AC", &[("type", "Mains"), ("online", "1")]);
        assert_eq!(read_power(dir.path()), Some(true));
        supply("BAT0", &[("type", "Battery"), ("status", "Charging")]);
        supply("AC", &[("type", "Mains"), ("online", "0")]);
        assert_eq!(read_power(dir.path()), Some(true));
        assert!(local_hour() < 24);
    }
}
