//! Holder: an emulated My Number Card (JPKI AP over APDUs) and its client
