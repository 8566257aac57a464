//! A loopback DNS server for discovery tests: answers from a fixed table of records and says
//! NXDOMAIN to everything else, so a test controls what MX and SRV lookups find without any
//! query leaving the machine.

use std::net::SocketAddr;
use std::sync::Arc;

use hickory_resolver::proto::op::{Message, OpCode, ResponseCode};
use hickory_resolver::proto::rr::rdata::{MX, SRV};
use hickory_resolver::proto::rr::{Name, RData, Record};

pub struct DnsServer {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn name(text: &str) -> Name {
    Name::from_ascii(text).expect("a DNS name")
}

/// An MX record: `(owner, preference, exchange)`.
pub fn mx(owner: &str, preference: u16, exchange: &str) -> (Name, RData) {
    (name(owner), RData::MX(MX::new(preference, name(exchange))))
}

/// An SRV record: `(owner, priority, port, target)`.
pub fn srv(owner: &str, priority: u16, port: u16, target: &str) -> (Name, RData) {
    (
        name(owner),
        RData::SRV(SRV::new(priority, 1, port, name(target))),
    )
}

/// Starts answering on a free loopback UDP port.
pub async fn start(records: Vec<(Name, RData)>) -> DnsServer {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("a UDP port");
    let addr = socket.local_addr().expect("its address");
    let records = Arc::new(records);
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((len, peer)) = socket.recv_from(&mut buf).await else {
                return;
            };
            let Ok(query) = Message::from_vec(&buf[..len]) else {
                continue;
            };
            let mut answer = Message::response(query.metadata.id, OpCode::Query);
            answer.metadata.recursion_desired = query.metadata.recursion_desired;
            answer.metadata.recursion_available = true;
            for q in &query.queries {
                answer.add_query(q.clone());
                for (owner, data) in records.iter() {
                    if owner == q.name() && data.record_type() == q.query_type() {
                        answer.add_answer(Record::from_rdata(owner.clone(), 60, data.clone()));
                    }
                }
            }
            if answer.answers.is_empty() {
                answer.metadata.response_code = ResponseCode::NXDomain;
            }
            if let Ok(bytes) = answer.to_vec() {
                let _ = socket.send_to(&bytes, peer).await;
            }
        }
    });
    DnsServer { addr, task }
}
