//! Subconnections: extra folders an account asked to watch on their own IDLE connections
//! (`subconnections`). Each takes a slot of the account's budget only while one stays free for
//! command sessions; folders beyond that are synced with the others instead.

use emailengine_core::account::ServerSettings;

use crate::account::backoff;
use crate::connect::connect;
use crate::folders::Folder;
use crate::registry::Engine;
use crate::sync::SyncError;

/// Aborts the tasks it holds when dropped.
pub(crate) struct TaskGuard(Vec<tokio::task::JoinHandle<()>>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// Starts the subconnections the account record asks for (`wanted`, as read for this
/// connection); the returned guard stops them.
pub(crate) fn start(
    engine: &Engine,
    account: &str,
    settings: &ServerSettings,
    wanted: &[String],
    folders: &[Folder],
    main: &Folder,
    abilities: crate::connect::Abilities,
) -> TaskGuard {
    let mut tasks = Vec::new();
    for path in wanted {
        let Some(folder) = folders
            .iter()
            .find(|f| f.path == *path && f.path != main.path && f.selectable())
        else {
            tracing::warn!(account, path, "Subconnection folder not found");
            continue;
        };
        let (engine, account, settings, folder) = (
            engine.clone(),
            account.to_string(),
            settings.clone(),
            folder.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut attempt = 0;
            loop {
                match watch(&engine, &account, &settings, &folder, abilities).await {
                    Ok(()) => attempt = 0,
                    Err(e) => {
                        attempt += 1;
                        tracing::warn!(account, path = %folder.path, err = %e, "Subconnection failed");
                    }
                }
                tokio::time::sleep(backoff(attempt.max(1))).await;
            }
        }));
    }
    TaskGuard(tasks)
}

/// One subconnection: IDLE on a folder, syncing it on this same connection after each change.
async fn watch(
    engine: &Engine,
    account: &str,
    settings: &ServerSettings,
    folder: &Folder,
    abilities: crate::connect::Abilities,
) -> Result<(), SyncError> {
    let Some(_slot) = engine.pool(account).reserve_spare() else {
        tracing::debug!(account, path = %folder.path, "No connection to spare for a subconnection");
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        return Ok(());
    };
    let mut session = connect(settings)
        .await
        .map_err(|e| SyncError::Imap(crate::error::ImapError::Connection(e.to_string())))?;
    let renew = engine.0.config.idle_renew;
    loop {
        engine
            .sync_locked(&mut session, account, folder, abilities, None)
            .await?;
        while session.unsolicited_responses.try_recv().is_ok() {}
        let mut idle = session.idle();
        idle.init().await?;
        let (fut, _stop) = idle.wait_with_timeout(renew);
        let outcome = fut.await;
        session = idle.done().await?;
        outcome?;
    }
}
