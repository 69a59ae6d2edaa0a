//! What a line typed in the interactive session means: a pure function.

/// One line of input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Nothing (an empty line).
    Nothing,
    /// `:q`.
    Quit,
    /// `:help`.
    Help,
    /// `:olu`: online contacts.
    Online,
    /// `:groups`: your groups.
    Groups,
    /// `:u <user>`: talk to a user.
    SwitchUser(String),
    /// `:g <group>`: talk in a group (id or name).
    SwitchGroup(String),
    /// `:join <group>`: join a public group (id or name).
    Join(String),
    /// `:history [n]`: the last n messages of the current conversation.
    History(u32),
    /// `user;;text`: a private message.
    Private {
        /// To whom.
        to: String,
        /// The text.
        text: String,
    },
    /// A plain line: to the current conversation.
    Say(String),
}

/// Messages `:history` shows without a count.
pub const DEFAULT_HISTORY: u32 = 20;
/// Most messages one `:history` asks for (the relay's page limit).
pub const MAX_HISTORY: u32 = 200;

/// The help text.
pub const HELP: &str = "\
commands:
  text            send to the current conversation
  user;;text      send a private message to user
  :u <user>       talk to a user
  :g <group>      talk in a group (its id or name)
  :history [n]    the last n messages here (default 20, at most 200)
  :olu            your online contacts
  :groups         your groups
  :join <group>   join a public group (its id or name)
  :help           this
  :q              quit";

/// Parses one line; `Err` is a message for the user.
pub fn parse(line: &str) -> Result<Command, String> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() {
        return Ok(Command::Nothing);
    }
    if let Some(rest) = line.trim_start().strip_prefix(':') {
        let mut words = rest.split_whitespace();
        let name = words.next().unwrap_or("");
        let arg: Vec<&str> = words.collect();
        let one = |what: &str| match arg.as_slice() {
            [a] => Ok(a.to_string()),
            _ => Err(format!(":{name} takes one {what}")),
        };
        let none = |c: Command| {
            if arg.is_empty() {
                Ok(c)
            } else {
                Err(format!(":{name} takes no argument"))
            }
        };
        return match name {
            "q" | "quit" => none(Command::Quit),
            "help" | "h" | "?" => none(Command::Help),
            "olu" => none(Command::Online),
            "groups" => none(Command::Groups),
            "u" => one("username").map(Command::SwitchUser),
            "g" => one("group").map(Command::SwitchGroup),
            "join" => one("group").map(Command::Join),
            "history" => match arg.as_slice() {
                [] => Ok(Command::History(DEFAULT_HISTORY)),
                [n] => match n.parse::<u32>() {
                    Ok(n) if (1..=MAX_HISTORY).contains(&n) => Ok(Command::History(n)),
                    _ => Err(format!(":history takes a count from 1 to {MAX_HISTORY}")),
                },
                _ => Err(":history takes at most one count".into()),
            },
            _ => Err(format!("unknown command :{name} (:help lists them)")),
        };
    }
    if let Some((to, text)) = line.split_once(";;") {
        if !to.is_empty() && !to.contains(char::is_whitespace) {
            if text.trim().is_empty() {
                return Err(format!("nothing to send to {to}"));
            }
            return Ok(Command::Private {
                to: to.to_string(),
                text: text.to_string(),
            });
        }
    }
    Ok(Command::Say(line.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Command::*;

    #[test]
    fn commands_parse() {
        assert_eq!(parse(":q"), Ok(Quit));
        assert_eq!(parse("  :q  "), Ok(Quit));
        assert_eq!(parse(":help"), Ok(Help));
        assert_eq!(parse(":olu"), Ok(Online));
        assert_eq!(parse(":groups"), Ok(Groups));
        assert_eq!(parse(":u bob"), Ok(SwitchUser("bob".into())));
        assert_eq!(parse(":g team"), Ok(SwitchGroup("team".into())));
        assert_eq!(parse(":g 12"), Ok(SwitchGroup("12".into())));
        assert_eq!(parse(":join team"), Ok(Join("team".into())));
        assert_eq!(parse(":history"), Ok(History(20)));
        assert_eq!(parse(":history 5"), Ok(History(5)));
        assert_eq!(parse(""), Ok(Nothing));
        assert_eq!(parse("   "), Ok(Nothing));
    }

    #[test]
    fn bad_commands_say_why() {
        assert!(parse(":u").unwrap_err().contains("one username"));
        assert!(parse(":u a b").is_err());
        assert!(parse(":q now").unwrap_err().contains("no argument"));
        assert!(parse(":history 0").is_err());
        assert!(parse(":history 201").is_err());
        assert!(parse(":history x").is_err());
        assert!(parse(":nope").unwrap_err().contains(":help"));
        assert!(parse("bob;;   ").unwrap_err().contains("nothing to send"));
    }

    #[test]
    fn private_messages_and_plain_lines() {
        assert_eq!(
            parse("bob;;hello"),
            Ok(Private {
                to: "bob".into(),
                text: "hello".into()
            })
        );
        assert_eq!(
            parse("bob;;a;;b"),
            Ok(Private {
                to: "bob".into(),
                text: "a;;b".into()
            })
        );
        assert_eq!(parse("hello there"), Ok(Say("hello there".into())));
        // A space before `;;` makes it a plain line, not a username.
        assert_eq!(parse("so ;; what"), Ok(Say("so ;; what".into())));
        assert_eq!(parse(";;x"), Ok(Say(";;x".into())));
        assert_eq!(parse("a: b"), Ok(Say("a: b".into())));
    }
}
