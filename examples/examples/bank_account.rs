//! A user type registered with a manager (Python's `BaseManager.register`): a bank account that
//! lives in the manager process, reached through a proxy from several processes.
//!
//! Two child processes deposit 100 times each; the parent prints the balance (`balance: 2100`),
//! an overdraft refused by the account, and a call that panics inside the manager, which fails
//! alone while the manager lives on.

use ipc_core::Process;
use ipc_pool::{Managed, Manager, Proxy};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Account {
    owner: String,
    balance: i64,
}

#[derive(Serialize, Deserialize)]
enum Op {
    Deposit(i64),
    Withdraw(i64),
    Balance,
    Audit,
}

impl Managed for Account {
    type Request = Op;
    type Response = Result<i64, String>;

    fn handle(&mut self, op: Op) -> Result<i64, String> {
        match op {
            Op::Deposit(n) => self.balance += n,
            Op::Withdraw(n) if n > self.balance => {
                return Err(format!(
                    "{} cannot withdraw {n}: balance {}",
                    self.owner, self.balance
                ));
            }
            Op::Withdraw(n) => self.balance -= n,
            Op::Balance => {}
            Op::Audit => panic!("the auditor is out today"),
        }
        Ok(self.balance)
    }
}

fn deposit_hundred_times(account: Proxy<Account>) {
    for _ in 0..100 {
        account
            .call(Op::Deposit(10))
            .expect("manager")
            .expect("deposit");
    }
}

fn main() -> anyhow::Result<()> {
    ipc_core::init();
    let manager = Manager::start()?;
    let account = manager.register(Account {
        owner: "Alice".into(),
        balance: 100,
    })?;
    let children: Vec<_> = (0..2)
        .map(|_| -> anyhow::Result<_> {
            let p = Process::new(deposit_hundred_times, account.clone());
            p.start()?;
            Ok(p)
        })
        .collect::<anyhow::Result<_>>()?;
    for p in children {
        p.join()?;
    }
    println!(
        "balance: {}",
        account.call(Op::Balance)?.map_err(anyhow::Error::msg)?
    );
    match account.call(Op::Withdraw(5000))? {
        Ok(b) => println!("withdrew, balance {b}"),
        Err(refused) => println!("refused: {refused}"),
    }
    match account.call(Op::Audit) {
        Ok(_) => println!("audit passed"),
        Err(e) => println!("audit failed: {e}"),
    }
    println!(
        "balance after all that: {}",
        account.call(Op::Balance)?.map_err(anyhow::Error::msg)?
    );
    Ok(())
}
