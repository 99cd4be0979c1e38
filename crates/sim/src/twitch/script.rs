//! The demo script: a task that keeps the first configured channel busy so
//! `switchboard demo` shows live chat, follows, subs and raids with no
//! account anywhere. Each beat (every `demo_script_interval`) a scripted
//! chatter speaks (badges, global emotes, now and then a reply); early beats
//! bring a follow, a sub and a raid, and later ones more follows, cheers,
//! resubs and gifts. It stops with the simulator's shutdown signal.

use super::{ChatterMessage, Sim, eventsub, irc};

const LINES: &[&str] = &[
    "hello chat HeyGuys",
    "!hello everyone, Kappa this stream is great",
    "what are we building today?",
    "LUL that bug",
    "is that Rust? SeemsGood",
    "first time here, love the overlay <3",
    "PogChamp it compiled on the first try",
    "can you explain the job outbox again?",
    "Keepo Keepo",
    "the borrow checker wins again LUL",
    "switchboard looks really useful",
    "VoHiYo from Berlin",
];

const REPLIES: &[&str] = &[
    "agreed!",
    "same here Kappa",
    "haha yes",
    "good question, I wondered too",
];

pub(crate) async fn run(sim: Sim) {
    let mut shutdown = sim.shutdown();
    let (interval, channel, raider, chatters) = {
        let state = sim.lock();
        let channel = state
            .config
            .users
            .first()
            .map(|u| u.login.to_ascii_lowercase())
            .unwrap_or_else(|| "simstreamer".into());
        let raider = state
            .users
            .iter()
            .find(|u| u.login != channel && u.broadcaster_type == "partner")
            .map(|u| u.login.clone())
            .unwrap_or_else(|| "raider_ray".into());
        let mut chatters: Vec<String> = state
            .users
            .iter()
            .filter(|u| u.login.starts_with("chatter_"))
            .map(|u| u.login.clone())
            .collect();
        if chatters.is_empty() {
            chatters.push("chatter_ann".into());
        }
        (state.config.demo_script_interval, channel, raider, chatters)
    };
    let mut beat: u64 = 0;
    let mut last_message: Option<String> = None;
    loop {
        tokio::select! {
            _ = super::stopped(&mut shutdown) => return,
            _ = tokio::time::sleep(interval) => {}
        }
        beat += 1;
        let mut state = sim.lock();
        let chatter = chatters[(beat as usize) % chatters.len()].clone();
        match beat {
            2 => {
                eventsub::follow(&mut state, &channel, "new_viewer_1");
            }
            4 => {
                eventsub::subscribe(&mut state, &channel, &chatter, "1000");
            }
            6 => {
                eventsub::raid(&mut state, &raider, &channel, 42);
            }
            b if b % 15 == 0 => {
                eventsub::follow(&mut state, &channel, &format!("new_viewer_{}", b / 15 + 1));
            }
            b if b % 11 == 0 => {
                eventsub::cheer(&mut state, &channel, &chatter, 100, "great stream!");
                continue;
            }
            b if b % 40 == 0 => {
                eventsub::gift(&mut state, &channel, &chatter, 3, "1000");
            }
            b if b % 25 == 0 => {
                let months = 2 + (b / 25) as u32;
                eventsub::resubscribe(&mut state, &channel, &chatter, months, "still here Kappa");
            }
            _ => {}
        }
        let reply = last_message.clone().filter(|_| beat.is_multiple_of(5));
        let text = match reply {
            Some(_) => REPLIES[(beat as usize / 5) % REPLIES.len()],
            None => LINES[(beat as usize) % LINES.len()],
        };
        let mut message = ChatterMessage::new(&channel, &chatter, text);
        message.reply_to = reply;
        message.first_message = beat == 1;
        last_message = Some(irc::speak(&mut state, message));
    }
}
