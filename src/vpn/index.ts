export { generateKeyPair, generatePresharedKey, publicKeyOf, type WireguardKeyPair, type RandomBytes } from './wireguard-key';
export { planAddresses, type AddressPlan } from './address-plan';
export { hubConfig, peerConfig, type HubPeer } from './wireguard-config';
export { renderUserData, withAgentUnit, type UserDataValues } from './user-data';
export { vpnFiles, TOKEN_PLACEHOLDER, type VpnFile, type VpnInitOptions } from './vpn-files';
export { writeVpnFiles, FilesExistError } from './vpn-writer';
export { poolAddresses } from './address-plan';
export { LaunchPeers, AddressPlanExhaustedError, HubCommandError, type LaunchPeersDeps, type LaunchPeersVpn } from './launch-peers';
export { renderHubCommand, runHubCommand, type HubCommandRunner, type HubCommandValues } from './hub-command';
