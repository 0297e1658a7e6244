//! Configuration shared by every host, parsed in one place.

use std::time::Duration;

/// Why a configuration value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The delay is not a whole number of milliseconds.
    #[error("delay {} is not a whole number of milliseconds (expected 0 to {max})", Quoted(.0), max = Delay::MAX_MILLIS)]
    DelayNotANumber(String),
    /// The delay is a number, but above [`Delay::MAX_MILLIS`]: the digits as given.
    #[error("delay {0} ms is too long (expected 0 to {max})", max = Delay::MAX_MILLIS)]
    DelayTooLong(String),
}

/// A value as it was given, in double quotes, what a terminal or a page could misread escaped:
/// `"` and `\`, and each control character (`\n`, `\u{7f}`). Not `{:?}`, whose escaping of any
/// Unicode text brings tables a component would carry for this one message.
struct Quoted<'a>(&'a str);

impl std::fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write;
        f.write_char('"')?;
        for c in self.0.chars() {
            match c {
                '"' | '\\' => {
                    f.write_char('\\')?;
                    f.write_char(c)?;
                }
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                c if c.is_control() => write!(f, "\\u{{{:x}}}", u32::from(c))?,
                c => f.write_char(c)?,
            }
        }
        f.write_char('"')
    }
}

/// A configuration variable (from an environment or a host) that holds an invalid value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {error}")]
pub struct VarError {
    /// The variable, as the user set it: `HELLO_EDGE_DELAY_MS`.
    pub name: &'static str,
    /// What is wrong with its value.
    pub error: ConfigError,
}

impl VarError {
    /// The line a host's log gets for it, once, where the operator looks (every request
    /// answers 500 until the variable is fixed): `hello-edge: invalid configuration: NAME: why`.
    pub fn log_line(&self) -> String {
        format!("hello-edge: invalid configuration: {self}\n")
    }
}

/// How long a successful answer waits before it is sent.
///
/// The core only decides the delay; each host sleeps it on its own event loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Delay(Duration);

impl Delay {
    /// The delay of the original lesson: half a second.
    pub const DEFAULT: Delay = Delay(Duration::from_millis(500));
    /// The longest delay accepted, in milliseconds: one minute.
    pub const MAX_MILLIS: u64 = 60_000;

    /// A delay of `ms` milliseconds, `0` to [`Delay::MAX_MILLIS`].
    pub fn from_millis(ms: u64) -> Result<Delay, ConfigError> {
        if ms <= Self::MAX_MILLIS {
            Ok(Delay(Duration::from_millis(ms)))
        } else {
            Err(ConfigError::DelayTooLong(ms.to_string()))
        }
    }

    /// Parses a delay from a whole number of milliseconds, `0` to [`Delay::MAX_MILLIS`],
    /// as given on a command line or in an environment variable (surrounding spaces allowed).
    pub fn from_millis_str(s: &str) -> Result<Delay, ConfigError> {
        let trimmed = s.trim();
        // `u64::from_str` accepts a leading `+`; a delay is plain digits.
        if trimmed.is_empty() || !trimmed.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ConfigError::DelayNotANumber(s.to_owned()));
        }
        match trimmed.parse::<u64>() {
            Ok(ms) if ms <= Self::MAX_MILLIS => Self::from_millis(ms),
            // Too many, or more digits than fit in a u64: say it as it was given.
            _ => Err(ConfigError::DelayTooLong(trimmed.to_owned())),
        }
    }

    /// The delay as a [`Duration`].
    pub const fn as_duration(self) -> Duration {
        self.0
    }
}

impl Default for Delay {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl std::str::FromStr for Delay {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_millis_str(s)
    }
}

impl std::fmt::Display for Delay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ms", self.0.as_millis())
    }
}

/// Everything the core needs to answer a request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Config {
    /// The wait before each successful answer.
    pub delay: Delay,
}

impl Config {
    /// The environment variable every host reads the delay from.
    pub const DELAY_ENV: &'static str = "HELLO_EDGE_DELAY_MS";

    /// A configuration with the given delay.
    pub fn with_delay(delay: Delay) -> Self {
        Config { delay }
    }

    /// Reads the configuration from a variable lookup (an environment, a host's variables),
    /// falling back to the defaults for anything unset.
    ///
    /// The error names the variable, so a host can show it as it is.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, VarError> {
        let delay = match lookup(Self::DELAY_ENV) {
            Some(value) => Delay::from_millis_str(&value).map_err(|error| VarError {
                name: Self::DELAY_ENV,
                error,
            })?,
            None => Delay::DEFAULT,
        };
        Ok(Config { delay })
    }

    /// Reads the configuration from the process's environment (a component's is the one its
    /// host gives it), as [`Config::from_lookup`] does.
    pub fn from_env() -> Result<Config, VarError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }
}

/// What a host serves with: its [`Config`], or, when a variable it reads holds an invalid value,
/// that variable's error, which every request then answers 500 naming ([`crate::respond`]). A
/// host validates once, when it reads its configuration, and hands this to every request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settings {
    /// A valid configuration.
    Configured(Config),
    /// A variable holds an invalid value: no request can be served as configured.
    Misconfigured(VarError),
}

impl Settings {
    /// Reads the settings from the process's environment ([`Config::from_env`]).
    pub fn from_env() -> Settings {
        Config::from_env().into()
    }

    /// The settings from the process's environment, read once per process (a component's: once
    /// per instance, which a host may reuse for later requests, so the host call that copies the
    /// environment in is not repeated for every request). When they are misconfigured, `log`
    /// gets [`VarError::log_line`], once, where the operator looks.
    pub fn from_env_once(log: impl FnOnce(&str)) -> &'static Settings {
        static SETTINGS: std::sync::OnceLock<Settings> = std::sync::OnceLock::new();
        SETTINGS.get_or_init(|| {
            let settings = Settings::from_env();
            if let Settings::Misconfigured(err) = &settings {
                log(&err.log_line());
            }
            settings
        })
    }
}

impl From<Config> for Settings {
    fn from(config: Config) -> Settings {
        Settings::Configured(config)
    }
}

impl From<Result<Config, VarError>> for Settings {
    fn from(read: Result<Config, VarError>) -> Settings {
        match read {
            Ok(config) => Settings::Configured(config),
            Err(err) => Settings::Misconfigured(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Delay {
        Delay(Duration::from_millis(n))
    }

    #[test]
    fn parses_whole_milliseconds() {
        assert_eq!(Delay::from_millis_str("500"), Ok(ms(500)));
        assert_eq!(Delay::from_millis_str("0"), Ok(ms(0)));
        assert_eq!(Delay::from_millis_str(" 250\n"), Ok(ms(250)));
        assert_eq!(Delay::from_millis_str("60000"), Ok(ms(60_000)));
    }

    #[test]
    fn refuses_what_is_not_a_number() {
        for bad in ["", " ", "abc", "-1", "+5", "1.5", "500ms", "1e3", "0x10"] {
            assert_eq!(
                Delay::from_millis_str(bad),
                Err(ConfigError::DelayNotANumber(bad.to_owned())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn from_millis_takes_the_same_range() {
        assert_eq!(Delay::from_millis(0), Ok(ms(0)));
        assert_eq!(Delay::from_millis(60_000), Ok(ms(60_000)));
        assert_eq!(
            Delay::from_millis(60_001),
            Err(ConfigError::DelayTooLong("60001".to_owned()))
        );
    }

    #[test]
    fn refuses_delays_over_a_minute() {
        assert_eq!(
            Delay::from_millis_str("60001"),
            Err(ConfigError::DelayTooLong("60001".to_owned()))
        );
        // Past what a u64 holds, the message still quotes what was typed.
        let huge = "99999999999999999999999";
        assert_eq!(
            Delay::from_millis_str(&format!(" {huge}\n")),
            Err(ConfigError::DelayTooLong(huge.to_owned()))
        );
        assert_eq!(
            Delay::from_millis_str(huge).unwrap_err().to_string(),
            format!("delay {huge} ms is too long (expected 0 to 60000)")
        );
    }

    #[test]
    fn a_refused_value_is_quoted_with_what_could_be_misread_escaped() {
        let err = Delay::from_millis_str("5\"0\\\n\u{7f}é").unwrap_err();
        assert_eq!(
            err.to_string(),
            "delay \"5\\\"0\\\\\\n\\u{7f}é\" is not a whole number of milliseconds (expected 0 to 60000)"
        );
    }

    #[test]
    fn error_messages_say_what_is_expected() {
        let err = Delay::from_millis_str("soon").unwrap_err();
        assert_eq!(
            err.to_string(),
            "delay \"soon\" is not a whole number of milliseconds (expected 0 to 60000)"
        );
        let err = Delay::from_millis_str("70000").unwrap_err();
        assert_eq!(
            err.to_string(),
            "delay 70000 ms is too long (expected 0 to 60000)"
        );
    }

    #[test]
    fn default_is_half_a_second() {
        assert_eq!(
            Config::default().delay.as_duration(),
            Duration::from_millis(500)
        );
        assert_eq!(Delay::DEFAULT.to_string(), "500 ms");
    }

    #[test]
    fn lookup_uses_the_variable_or_the_default() {
        let unset = Config::from_lookup(|_| None).unwrap();
        assert_eq!(unset, Config::default());

        let set = Config::from_lookup(|name| (name == "HELLO_EDGE_DELAY_MS").then(|| "20".into()));
        assert_eq!(set, Ok(Config::with_delay(ms(20))));

        let bad = Config::from_lookup(|_| Some("x".into())).unwrap_err();
        assert_eq!(
            bad.to_string(),
            "HELLO_EDGE_DELAY_MS: delay \"x\" is not a whole number of milliseconds (expected 0 to 60000)"
        );
        assert_eq!(
            bad.log_line(),
            "hello-edge: invalid configuration: HELLO_EDGE_DELAY_MS: delay \"x\" is not a whole number of milliseconds (expected 0 to 60000)\n"
        );
    }

    #[test]
    fn settings_are_the_config_or_its_error() {
        assert_eq!(
            Settings::from(Config::default()),
            Settings::Configured(Config::default())
        );
        let bad = Config::from_lookup(|_| Some("x".into()));
        assert_eq!(
            Settings::from(bad.clone()),
            Settings::Misconfigured(bad.unwrap_err())
        );
    }
}
