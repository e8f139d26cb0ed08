//! Command-line parsing with the exit status for bad configuration.

use std::{
    ffi::{OsStr, OsString},
    time::Duration,
};

use clap::{ArgAction, Parser};

/// Exit status for invalid configuration (BSD `EX_CONFIG`... `EX_USAGE` = 64).
pub const EX_CONFIG: i32 = 64;

/// Parses the process's arguments and environment; on invalid configuration
/// prints clap's message and exits with status 64 (help and version exit 0).
pub fn parse_or_exit<C: Parser>() -> C {
    match parse_from::<C>(std::env::args_os(), |name| std::env::var_os(name)) {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            let _ = e.print();
            std::process::exit(EX_CONFIG);
        }
    }
}

/// Parses `C` from `args` (the program name first) and the variables `env`
/// answers, never from the process environment: a pure function of what it
/// is given. A flag on the command line wins over its variable.
pub fn parse_from<C: Parser>(
    args: impl IntoIterator<Item = OsString>,
    env: impl Fn(&str) -> Option<OsString>,
) -> Result<C, clap::Error> {
    let mut args: Vec<OsString> = args.into_iter().collect();
    let command = C::command();
    let mut from_env = Vec::new();
    for arg in command.get_arguments() {
        let (Some(var), Some(long)) = (arg.get_env().and_then(OsStr::to_str), arg.get_long()) else { continue };
        let flag = format!("--{long}");
        let given =
            args.iter().skip(1).filter_map(|a| a.to_str()).any(|a| a == flag || a.starts_with(&format!("{flag}=")));
        let Some(value) = env(var).filter(|_| !given) else { continue };
        if arg.get_action().takes_values() {
            let mut assignment = OsString::from(format!("{flag}="));
            assignment.push(&value);
            from_env.push(assignment);
        } else if matches!(arg.get_action(), ArgAction::SetTrue) && truthy(&value) {
            from_env.push(flag.into());
        }
    }
    // The variables become flags right after the program name (before any
    // subcommand); clap itself reads no variable.
    let at = args.len().min(1);
    args.splice(at..at, from_env);
    let no_env = command.mut_args(|a| a.env(None::<&str>));
    match no_env.try_get_matches_from(&args) {
        Ok(mut matches) => C::from_arg_matches_mut(&mut matches),
        // Help names each flag's variable: render it from the full command.
        Err(e) if !e.use_stderr() => Err(C::command().try_get_matches_from(&args).err().unwrap_or(e)),
        Err(e) => Err(e),
    }
}

fn truthy(value: &OsStr) -> bool {
    matches!(value.to_str().map(str::to_ascii_lowercase).as_deref(), Some("true" | "1" | "yes" | "on"))
}

/// Parses `250ms`, `5s`, `2m`, `24h` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: u64 = number.parse().map_err(|_| format!("{s:?} is not a duration such as 500ms, 5s, 2m or 24h"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => return Err(format!("{s:?} has an unknown unit (use ms, s, m or h)")),
    };
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("ms").is_err());
    }

    #[derive(Debug, Parser)]
    struct Example {
        #[arg(long, env = "VELTRIX_TEST_URL", default_value = "nats://default")]
        url: String,
        #[arg(long, env = "VELTRIX_TEST_OFF")]
        off: bool,
        #[command(subcommand)]
        command: Option<Sub>,
    }

    #[derive(Debug, clap::Subcommand)]
    enum Sub {
        Rebuild,
    }

    fn parse(args: &[&str], env: &[(&str, &str)]) -> Result<Example, clap::Error> {
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        parse_from(args.iter().map(OsString::from), |name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| OsString::from(v))
        })
    }

    #[test]
    fn configuration_is_a_function_of_the_arguments_and_the_variables_given() {
        let c = parse(&["x"], &[]).unwrap();
        assert_eq!((c.url.as_str(), c.off), ("nats://default", false));
        let c = parse(&["x"], &[("VELTRIX_TEST_URL", "nats://env"), ("VELTRIX_TEST_OFF", "true")]).unwrap();
        assert_eq!((c.url.as_str(), c.off), ("nats://env", true));
        let c = parse(&["x", "--url", "nats://flag"], &[("VELTRIX_TEST_URL", "nats://env")]).unwrap();
        assert_eq!(c.url, "nats://flag", "a flag wins over its variable");
        let c = parse(&["x", "rebuild"], &[("VELTRIX_TEST_URL", "nats://env")]).unwrap();
        assert!(matches!(c.command, Some(Sub::Rebuild)) && c.url == "nats://env", "variables go before a subcommand");
        assert!(!parse(&["x"], &[("VELTRIX_TEST_OFF", "false")]).unwrap().off);
        let help = parse(&["x", "--help"], &[]).unwrap_err().to_string();
        assert!(help.contains("VELTRIX_TEST_URL"), "help names the variables: {help}");
    }
}
