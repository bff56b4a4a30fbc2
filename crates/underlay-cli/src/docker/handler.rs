//! One engine call per Docker request; core errors become `{"Err": ...}`.

use std::sync::{Mutex, MutexGuard};

use underlay_core::{Engine, Error};
use underlay_docker::{
    DefaultAddressSpaces, Handler, IpamCapabilities, NetworkCapabilities, PluginError, Request,
    Response, Scope,
};
use underlay_linux::LinuxKernel;

use super::{endpoint, network};

pub struct Plugin {
    engine: Mutex<Engine<LinuxKernel>>,
}

impl Plugin {
    pub fn new(engine: Mutex<Engine<LinuxKernel>>) -> Plugin {
        Plugin { engine }
    }

    fn engine(&self) -> MutexGuard<'_, Engine<LinuxKernel>> {
        self.engine.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Handler for Plugin {
    fn handle(&self, request: Request) -> Result<Response, PluginError> {
        let method = request.method().name();
        let answer = self.answer(request);
        if let Err(e) = &answer {
            tracing::warn!(method, error = %e, "request refused");
        }
        answer.map_err(|e| PluginError::new(e.to_string()))
    }
}

impl Plugin {
    fn answer(&self, request: Request) -> Result<Response, Error> {
        let mut engine = self.engine();
        let engine = &mut *engine;
        Ok(match request {
            Request::NetworkGetCapabilities => Response::NetworkCapabilities(NetworkCapabilities {
                scope: Scope::Local,
                connectivity_scope: Some(Scope::Global),
                gw_alloc_checker: false,
            }),
            Request::CreateNetwork(r) => network::create(engine, &r).map(|()| Response::Empty)?,
            Request::DeleteNetwork(r) => {
                network::delete(engine, &r.network_id).map(|()| Response::Empty)?
            }
            Request::CreateEndpoint(r) => Response::CreateEndpoint(endpoint::create(engine, &r)?),
            Request::Join(r) => Response::Join(endpoint::join(engine, &r)?),
            Request::Leave(r) => endpoint::leave(engine, &r).map(|()| Response::Empty)?,
            Request::DeleteEndpoint(r) => endpoint::delete(engine, &r).map(|()| Response::Empty)?,
            Request::EndpointOperInfo(r) => Response::EndpointOperInfo(endpoint::info(engine, &r)?),
            Request::IpamGetCapabilities => Response::IpamCapabilities(IpamCapabilities {
                // The MAC is what a DHCP lease is tied to: it must be known when the address is.
                requires_mac_address: true,
                requires_request_replay: false,
            }),
            Request::GetDefaultAddressSpaces => {
                Response::DefaultAddressSpaces(DefaultAddressSpaces {
                    local: "underlay-local".into(),
                    global: "underlay-global".into(),
                })
            }
            Request::RequestPool(r) => Response::RequestPool(network::request_pool(engine, &r)?),
            Request::ReleasePool(r) => {
                network::release_pool(engine, &r.pool_id).map(|()| Response::Empty)?
            }
            Request::RequestAddress(r) => {
                Response::RequestAddress(endpoint::request_address(engine, &r)?)
            }
            Request::ReleaseAddress(r) => {
                endpoint::release_address(engine, &r).map(|()| Response::Empty)?
            }
            Request::AllocateNetwork(_) => Response::AllocateNetwork(Default::default()),
            Request::GwAllocCheck(_) => Response::GwAllocCheck(Default::default()),
            // No port mappings on the underlay, no swarm discovery: nothing to do.
            Request::FreeNetwork(_)
            | Request::ProgramExternalConnectivity(_)
            | Request::RevokeExternalConnectivity(_)
            | Request::DiscoverNew(_)
            | Request::DiscoverDelete(_)
            | Request::Activate => Response::Empty,
        })
    }
}

/// The engine network of a Docker network.
pub fn network_name(network_id: &str) -> String {
    format!("docker-{}", &network_id[..network_id.len().min(12)])
}
