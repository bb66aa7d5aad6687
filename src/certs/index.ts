export { CertStore, type CertStoreOptions } from './store.ts'
export type { CertPair } from './pair.ts'
export { devCaPaths, loadOrCreateDevCa, DEV_CA_NAME } from './dev-ca.ts'
